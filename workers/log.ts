import pino, { type Logger } from 'pino';

/**
 * One JSON line per event, with the ids of the work in hand added by child
 * loggers (`log.child({ host: 'metal3/server-01', workflowId })`). Paths that
 * could carry secrets are redacted even if a caller passes them by mistake.
 */
export function createLogger(opts: { name: string; level?: string; destination?: string }): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? process.env.IRONFLOW_LOG_LEVEL ?? 'info',
      redact: {
        paths: ['password', '*.password', 'token', '*.token', 'userData', '*.userData', 'authorization', '*.authorization'],
        censor: '[redacted]',
      },
    },
    opts.destination ? pino.destination({ dest: opts.destination, mkdir: true, sync: false }) : undefined,
  );
}
export type { Logger };
