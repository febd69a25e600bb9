#!/bin/sh
# Ironflow ramdisk agent (protocol: api/agent.ts). Runs under busybox sh in
# the agent initramfs, and unchanged in the lab against a synthesized tree:
# every path goes through SYSROOT (empty = the real /), so /proc/cmdline is
# "$SYSROOT/proc/cmdline" and disks are "$SYSROOT/dev/<name>".
#
#   token from /proc/cmdline -> lookup (who am I) -> poll command -> run it
#   -> report -> poll (one command per boot; after it the agent idles until
#   the plane powers the machine off or reboots it)
#
# The token (ironflow.token=) comes ONLY from the kernel command line of the
# per-boot iPXE script, which Ironflow serves once; no API call hands it out.
#
# Environment (all optional; defaults suit a real ramdisk):
#   SYSROOT                     root of /proc, /sys, /dev (lab: a directory)
#   IRONFLOW_MAX_ATTEMPTS       tries per API call while unreachable (30)
#   IRONFLOW_BACKOFF_MAX        longest sleep between tries, seconds (30)
#   IRONFLOW_HTTP_TIMEOUT       seconds per API call (30)
#   IRONFLOW_IMAGE_TIMEOUT      seconds for the whole image download (3600)
#   IRONFLOW_MAX_POLLS          stop after this many polls, 0 = never (0)
# Exit codes: 97 = power off requested in the lab (SYSROOT set), 2 = bad
# cmdline (no ironflow.api= or ironflow.token=), 3 = API unreachable,
# 4 = token refused or no longer valid (a newer boot was prepared, or the
# plane ended this one), 5 = poll limit reached.
set -u

SYSROOT=${SYSROOT:-}
AGENT_DIR=$(cd "$(dirname "$0")" && pwd)
. "$AGENT_DIR/lib/common.sh"
. "$AGENT_DIR/lib/hardware.sh"
. "$AGENT_DIR/lib/erase.sh"
. "$AGENT_DIR/lib/deploy.sh"

EXIT_LAB_POWEROFF=97
MAX_ATTEMPTS=${IRONFLOW_MAX_ATTEMPTS:-30}
BACKOFF_MAX=${IRONFLOW_BACKOFF_MAX:-30}
HTTP_TIMEOUT=${IRONFLOW_HTTP_TIMEOUT:-30}
IMAGE_TIMEOUT=${IRONFLOW_IMAGE_TIMEOUT:-3600}
MAX_POLLS=${IRONFLOW_MAX_POLLS:-0}

API="" BOOT="" TOKEN=""
for word in $(cat "$SYSROOT/proc/cmdline"); do
  case "$word" in
    ironflow.api=*) API=${word#*=} ;;
    ironflow.boot=*) BOOT=${word#*=} ;;
    ironflow.token=*) TOKEN=${word#*=} ;;
  esac
done
API=${API%/}
if [ -z "$API" ]; then log "no ironflow.api= on $SYSROOT/proc/cmdline: boot this ramdisk through Ironflow's PXE scripts"; exit 2; fi
if [ -z "$TOKEN" ]; then log "no ironflow.token= on $SYSROOT/proc/cmdline: boot this ramdisk through Ironflow's per-boot PXE script"; exit 2; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ironflow-agent.XXXXXX")
# The token and user data only ever touch $WORK (tmpfs in the ramdisk).
trap 'rm -rf "$WORK"' EXIT

# lookup: the token says which host and boot this is (the API tells, it never hands out tokens).
lookup() {
  printf '{%s}' "${BOOT:+\"bootId\":$(json_str "$BOOT")}" >"$WORK/lookup.json"
  if ! resp=$(with_backoff "$MAX_ATTEMPTS" api_call POST /v1/agent/lookup "$WORK/lookup.json"); then
    last_status
    case "$HTTP_STATUS" in
      401) log "lookup: Ironflow does not know this boot's token (its boot was replaced or forgotten)"; exit 4 ;;
      403) log "lookup: boot $BOOT has ended or its token belongs elsewhere (stale agent)"; exit 4 ;;
      *) log "lookup: $API unreachable after $MAX_ATTEMPTS tries (HTTP $HTTP_STATUS)"; exit 3 ;;
    esac
  fi
  HOST_PATH="/v1/agent/hosts/$(jget_str "$resp" namespace)/$(jget_str "$resp" name)"
  POLL=$(jget_num "$resp" pollIntervalSeconds); POLL=${POLL:-5}
  [ -n "$BOOT" ] || BOOT=$(jget_str "$resp" bootId)
  log "lookup ok: $HOST_PATH boot $BOOT, polling every ${POLL}s"
}

poweroff_now() {
  report_progress "$1" poweroff 100 "powering off"
  sync
  if [ -n "$SYSROOT" ]; then log "lab: power off (exit $EXIT_LAB_POWEROFF)"; exit $EXIT_LAB_POWEROFF; fi
  poweroff -f
}

lookup
DONE=" " polls=0 failures=0
while :; do
  polls=$((polls + 1))
  if [ "$MAX_POLLS" -gt 0 ] && [ "$polls" -gt "$MAX_POLLS" ]; then log "poll limit $MAX_POLLS reached"; exit 5; fi
  if ! resp=$(api_call GET "$HOST_PATH/command"); then
    last_status
    case "$HTTP_STATUS" in 401|403) log "command poll refused (HTTP $HTTP_STATUS): this boot's token is no longer valid"; exit 4 ;; esac
    failures=$((failures + 1))
    if [ "$failures" -ge "$MAX_ATTEMPTS" ]; then log "API unreachable for $failures polls"; exit 3; fi
    d=$((failures * 2)); [ "$d" -gt "$BACKOFF_MAX" ] && d=$BACKOFF_MAX
    sleep "$d"; continue
  fi
  failures=0
  id=$(jget_str "$resp" id) type=$(jget_str "$resp" type)
  # The command stays pending until its final report is accepted; an id run
  # already is not run twice (its report is being retried or was lost).
  case "$DONE" in *" $id "*) type=none ;; esac
  case "$type" in
    none|"") sleep "$POLL"; continue ;;
  esac
  log "command $id: $type"
  DONE="$DONE$id "
  case "$type" in
    inspect) cmd_inspect "$id" ;;
    deploy) cmd_deploy "$id" "$resp" ;;
    erase) cmd_erase "$id" "$resp" ;;
    poweroff) poweroff_now "$id" ;;
    *) report_failed "$id" "$type" "this agent does not know command type '$type'" ;;
  esac
done
