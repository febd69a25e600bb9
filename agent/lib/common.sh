# Shared helpers of the Ironflow agent: logging, JSON building and parsing,
# and the HTTP calls to the agent API (api/agent.ts). POSIX sh; busybox has no
# jq and no curl, so JSON is built with printf and read with sed. The API's
# responses are compact JSON from fastify with no nested quotes in the fields
# read here (ids, URLs, checksums, hint values), which is what makes sed safe.

log() { printf '%s ironflow-agent: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# json_str VALUE -> a JSON string literal (quotes and backslashes escaped,
# control characters dropped: sysfs values end in newlines and padding).
json_str() {
  printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}

# drop_caches: before a read-back, so what is read comes from the disk and
# not from the page cache that still holds what was just written. Only the
# real ramdisk (the lab reads its image files; that is what tests check).
drop_caches() {
  sync
  [ -z "$SYSROOT" ] && [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches
  return 0
}

# trim VALUE: sysfs model/vendor strings are space-padded (SCSI INQUIRY).
trim() { printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/^ *//' -e 's/ *$//'; }

# read_first FILE...: the first line of the first readable file, or nothing.
read_first() {
  for f in "$@"; do
    if [ -r "$f" ]; then head -n 1 "$f" 2>/dev/null; return 0; fi
  done
  return 1
}

# jget_str JSON KEY -> string value of the first "KEY":"..." (empty if absent).
jget_str() { printf '%s' "$1" | sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" | head -n 1; }
# jget_num JSON KEY -> number value of "KEY":N.
jget_num() { printf '%s' "$1" | sed -n "s/.*\"$2\":\(-\{0,1\}[0-9.][0-9.eE+-]*\).*/\1/p" | head -n 1; }
# jget_bool JSON KEY -> true|false|"" for "KEY":true/false.
jget_bool() { printf '%s' "$1" | sed -n "s/.*\"$2\":\(true\|false\).*/\1/p" | head -n 1; }
# jget_obj JSON KEY -> the inside of a flat object "KEY":{...} (no nesting).
jget_obj() { printf '%s' "$1" | sed -n "s/.*\"$2\":{\([^}]*\)}.*/\1/p" | head -n 1; }

# HTTP via busybox wget. wget -T segfaults in busybox 1.35 (seen on Debian 12), so every
# call is wrapped in `timeout`. The token travels in a header only, never in
# a URL, so it does not end up in server access logs.
# api_call METHOD PATH [BODYFILE] -> body on stdout; return 0 on 2xx.
# On failure HTTP_STATUS holds the status code (000 = unreachable).
HTTP_STATUS=000
api_call() {
  _method=$1 _path=$2 _body=${3:-}
  _err="$WORK/http.err"
  set -- -q -O - --header "Content-Type: application/json" -U ironflow-agent
  if [ -n "${TOKEN:-}" ]; then set -- "$@" --header "x-ironflow-agent-token: $TOKEN"; fi
  if [ "$_method" = POST ]; then set -- "$@" --post-file "${_body:-/dev/null}"; fi
  if timeout "$HTTP_TIMEOUT" wget "$@" "$API$_path" 2>"$_err"; then
    HTTP_STATUS=200
    echo 200 >"$WORK/http.status"
    return 0
  fi
  HTTP_STATUS=$(sed -n 's/.*server returned error: HTTP\/[0-9.]* \([0-9][0-9][0-9]\).*/\1/p' "$_err" | head -n 1)
  [ -n "$HTTP_STATUS" ] || HTTP_STATUS=000
  # Callers that capture the body run this in $(...): the status also goes
  # to a file they read with last_status.
  echo "$HTTP_STATUS" >"$WORK/http.status"
  return 1
}

last_status() { HTTP_STATUS=$(cat "$WORK/http.status" 2>/dev/null || echo 000); }

# with_backoff N CMD...: run CMD until it succeeds, at most N times, sleeping
# 1, 2, 4 ... up to BACKOFF_MAX seconds between tries. Stops early on a 4xx,
# which retrying cannot cure (except 429).
with_backoff() {
  _tries=$1; shift
  _delay=1 _i=1
  while :; do
    if "$@"; then return 0; fi
    case "$HTTP_STATUS" in 4??) [ "$HTTP_STATUS" = 429 ] || return 1 ;; esac
    [ "$_i" -ge "$_tries" ] && return 1
    log "$* failed (HTTP $HTTP_STATUS), retry $_i/$_tries in ${_delay}s"
    sleep "$_delay"
    _i=$((_i + 1)) _delay=$((_delay * 2))
    [ "$_delay" -gt "$BACKOFF_MAX" ] && _delay=$BACKOFF_MAX
  done
}

# post_report JSON: final reports are retried with backoff; the API answers a
# repeated report of a finished command with 204 and forwards it only once.
post_report() {
  printf '%s' "$1" > "$WORK/report.json"
  with_backoff "$MAX_ATTEMPTS" api_call POST "$HOST_PATH/reports" "$WORK/report.json" >/dev/null
}

# report_progress CMD_ID TYPE PERCENT MESSAGE: best effort, never retried.
report_progress() {
  printf '{"commandId":%s,"type":"%s","status":"progress","percent":%s,"message":%s}' \
    "$(json_str "$1")" "$2" "$3" "$(json_str "$4")" > "$WORK/progress.json"
  api_call POST "$HOST_PATH/reports" "$WORK/progress.json" >/dev/null || log "progress report not accepted (HTTP $HTTP_STATUS)"
}

# report_failed CMD_ID TYPE MESSAGE [DISK]
report_failed() {
  _fd=""
  [ -n "${4:-}" ] && _fd=",\"failedDisk\":$(json_str "$4")"
  post_report "$(printf '{"commandId":%s,"type":"%s","status":"failed","message":%s%s}' \
    "$(json_str "$1")" "$2" "$(json_str "$3")" "$_fd")"
}

# Evidence (api/agent.ts VerifyRegions): the plane picks regions of the disk
# and knows what they must hash to; the agent reads them back and reports
# sha256 over their bytes, in order. The plane writes each region as
# {"offset":N,"length":M}, in that key order, numbers only.
# region_list JSON -> "offset length" lines of every region in JSON.
region_list() {
  printf '%s' "$1" | grep -o '"offset":[0-9]*,"length":[0-9]*' | sed 's/"offset":\([0-9]*\),"length":\([0-9]*\)/\1 \2/'
}

# sample_sha256 DEV REGIONS_JSON -> sha256 over the regions read back from DEV.
# dd with skip_bytes/count_bytes takes byte offsets, so no block arithmetic
# (and no overflow) happens in the shell.
sample_sha256() {
  drop_caches
  region_list "$2" | while read -r _off _len; do
    dd if="$1" bs=65536 skip="$_off" count="$_len" iflag=skip_bytes,count_bytes 2>/dev/null
  done | sha256sum | cut -d' ' -f1
}
