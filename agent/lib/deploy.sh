# The deploy command: pick the root device, stream the image onto it, verify
# by reading back, write user data, report.
#
# User data location (documented gap): the bytes go to the LAST MiB of the
# root device, as a 512-byte header line
#   "IRONFLOW-USERDATA 1 <length> <sha256>\n" (zero padded to 512 bytes)
# followed by the data. The image never covers that MiB (the device must be
# image + 1 MiB). A stock cloud-init cannot read this: it wants a NoCloud
# "cidata" vfat/iso9660 filesystem or a config-2 partition. Making one needs a
# new partition after the image's (GPT rewrite) plus mkdosfs and mount, which
# a real ramdisk can do but image files in the lab cannot without loop
# devices; the image's first-boot unit must copy the region out until then.

USERDATA_REGION=1048576

# min_gib HINTS -> minSizeGigabytes as a plain decimal without leading zeros
# ("" when absent, "bad" when it is not a whole number, "huge" past 7 digits:
# no disk has 10^7 GiB). The plane refuses such hints already; this keeps the
# shell's 64-bit arithmetic safe for anything that gets here anyway (a 0010
# would be octal 8, 10000000000 GiB in bytes overflows).
min_gib() {
  _m=$(jget_num "$1" minSizeGigabytes)
  [ -n "$_m" ] || return 0
  case "$_m" in *[!0-9]*) echo bad; return 0 ;; esac
  _m=${_m#"${_m%%[!0]*}"}
  [ ${#_m} -le 7 ] || { echo huge; return 0; }
  echo "${_m:-0}"
}

# pick_root_device HINTS NEED: the smallest disk of at least NEED bytes that
# matches every hint (Metal3 semantics: model and vendor match substrings,
# minSizeGigabytes is GiB, the rest exact). Prints the name or nothing.
# Sizes are compared in whole GiB (size / 2^30 >= min, exact for a whole
# min), so no product is formed that could overflow.
pick_root_device() {
  hints=$1 need=$2
  h_name=$(jget_str "$hints" deviceName); h_name=${h_name#/dev/}
  h_serial=$(jget_str "$hints" serialNumber) h_model=$(jget_str "$hints" model)
  h_vendor=$(jget_str "$hints" vendor) h_wwn=$(jget_str "$hints" wwn)
  h_min=$(min_gib "$hints") h_rot=$(jget_bool "$hints" rotational)
  case "$h_min" in bad|huge) return 0 ;; esac
  h_wwn=${h_wwn#*.}
  best="" best_size=0
  for d in $(list_disks); do
    size=$(disk_size_bytes "$d")
    [ -z "$h_name" ] || [ "$d" = "$h_name" ] || continue
    [ -z "$h_serial" ] || [ "$(disk_serial "$d")" = "$h_serial" ] || continue
    [ -z "$h_wwn" ] || [ "$(disk_wwn "$d")" = "$h_wwn" ] || continue
    [ -z "$h_rot" ] || [ "$(disk_rotational "$d")" = "$h_rot" ] || continue
    if [ -n "$h_model" ]; then case "$(disk_model "$d")" in *"$h_model"*) ;; *) continue ;; esac; fi
    if [ -n "$h_vendor" ]; then case "$(disk_vendor "$d")" in *"$h_vendor"*) ;; *) continue ;; esac; fi
    [ -z "$h_min" ] || [ $(( size / 1073741824 )) -ge "$h_min" ] || continue
    [ "$size" -ge "$need" ] || continue
    if [ -z "$best" ] || [ "$size" -lt "$best_size" ]; then best=$d best_size=$size; fi
  done
  printf '%s' "$best"
}

# image_length URL: Content-Length from a HEAD-like request, or empty.
image_length() {
  timeout "$HTTP_TIMEOUT" wget -S --spider "$1" 2>&1 | sed -n 's/.*[Cc]ontent-[Ll]ength: *\([0-9][0-9]*\).*/\1/p' | tail -n 1
}

# write_image URL DEV LEN CMDID: stream URL to DEV; prints the byte count.
# tee feeds a FIFO whose reader counts the bytes (busybox dd prints records,
# not bytes); dd is poked with USR1 every second to report progress.
write_image() {
  rm -f "$WORK/count.fifo" "$WORK/count" "$WORK/wget.rc"
  mkfifo "$WORK/count.fifo"
  wc -c <"$WORK/count.fifo" >"$WORK/count" &
  { timeout "$IMAGE_TIMEOUT" wget -q -O - "$1" 2>"$WORK/wget.err"; echo $? >"$WORK/wget.rc"; } |
    tee "$WORK/count.fifo" | dd of="$2" bs=$MIB iflag=fullblock conv=notrunc,fsync 2>"$WORK/dd.err" &
  ddpid=$!
  while kill -0 "$ddpid" 2>/dev/null; do
    sleep 1
    kill -USR1 "$ddpid" 2>/dev/null || break
    recs=$(sed -n 's/^\([0-9]*\)+[0-9]* records out/\1/p' "$WORK/dd.err" | tail -n 1)
    if [ -n "$3" ] && [ "$3" -gt 0 ] && [ -n "$recs" ]; then
      pct=$(( recs * MIB * 90 / $3 )); [ "$pct" -gt 90 ] && pct=90
      report_progress "$4" deploy "$pct" "writing image: $recs MiB"
    fi
  done
  wait "$ddpid"; ddrc=$?
  wait
  # Runs in $(...): the reason goes through a file, not a variable.
  # dd first: a dead disk also kills wget (SIGPIPE).
  [ "$ddrc" = 0 ] || { echo "I/O error writing $5: $(grep -v 'records' "$WORK/dd.err" | head -n 1)" >"$WORK/detail"; return 1; }
  [ "$(cat "$WORK/wget.rc" 2>/dev/null)" = 0 ] || { echo "could not download the image ${1%%\?*}: $(head -n 1 "$WORK/wget.err")" >"$WORK/detail"; return 2; }
  cat "$WORK/count"
}

# write_user_data DEV SIZE FILE: the region described at the top.
write_user_data() {
  len=$(wc -c <"$3")
  [ "$len" -le $(( USERDATA_REGION - 512 )) ] || { DETAIL="user data is $len bytes, more than the $(( USERDATA_REGION - 512 )) the region holds"; return 1; }
  sum=$(sha256sum "$3" | cut -d' ' -f1)
  start=$(( $2 - USERDATA_REGION ))
  zero_range "$1" "$start" "$USERDATA_REGION" || return 1
  printf 'IRONFLOW-USERDATA 1 %s %s\n' "$len" "$sum" | dd of="$1" bs=512 seek="$start" oflag=seek_bytes conv=notrunc 2>/dev/null &&
    dd if="$3" of="$1" bs=$MIB seek=$(( start + 512 )) oflag=seek_bytes conv=notrunc,fsync 2>"$WORK/dd.err"
}

cmd_deploy() {
  id=$1 cmd=$2
  url=$(jget_str "$cmd" imageUrl) want=$(jget_str "$cmd" checksum) ctype=$(jget_str "$cmd" checksumType)
  has_ud=$(jget_bool "$cmd" hasUserData)
  # Pre-signed image URLs carry credentials in the query: never log or report it.
  shown=${url%%\?*}
  case "$ctype" in sha256|sha512) ;; *) report_failed "$id" deploy "unsupported checksumType '$ctype' (use sha256 or sha512)"; return ;; esac
  report_progress "$id" deploy 0 "choosing the root device"
  hints=$(jget_obj "$cmd" rootDeviceHints)
  case "$(min_gib "$hints")" in
    bad) report_failed "$id" deploy "rootDeviceHints.minSizeGigabytes must be a whole number of GiB"; return ;;
    huge) report_failed "$id" deploy "rootDeviceHints.minSizeGigabytes is larger than any disk (more than 7 digits of GiB): no disk matches"; return ;;
  esac
  len=$(image_length "$url")
  # A Content-Length past 15 digits (a petabyte) fits no disk, and must not reach shell arithmetic.
  if [ ${#len} -gt 15 ]; then report_failed "$id" deploy "the image server says ${shown} is $len bytes: no disk is that large"; return; fi
  need=${len:-0}; [ "$has_ud" = true ] && need=$(( need + USERDATA_REGION ))
  root=$(pick_root_device "$hints" "$need")
  if [ -z "$root" ]; then
    report_failed "$id" deploy "no disk matches rootDeviceHints {$hints} with room for $need bytes; disks: $(for d in $(list_disks); do printf '%s(%s bytes, serial %s) ' "$d" "$(disk_size_bytes "$d")" "$(disk_serial "$d")"; done)"
    return
  fi
  dev=$(disk_dev "$root") size=$(disk_size_bytes "$root")
  log "deploy: $shown -> /dev/$root (${len:-unknown} bytes)"
  rm -f "$WORK/detail"
  written=$(write_image "$url" "$dev" "${len:-0}" "$id" "/dev/$root"); rc=$?
  if [ "$rc" = 1 ]; then report_failed "$id" deploy "$(cat "$WORK/detail")" "$root"; return; fi
  if [ "$rc" != 0 ]; then report_failed "$id" deploy "$(cat "$WORK/detail")"; return; fi
  limit=$size; [ "$has_ud" = true ] && limit=$(( size - USERDATA_REGION ))
  if [ "$written" -gt "$limit" ]; then
    report_failed "$id" deploy "image of $written bytes does not fit /dev/$root ($size bytes)" "$root"; return
  fi
  report_progress "$id" deploy 90 "verifying $ctype of $written bytes read back from /dev/$root"
  drop_caches
  got=$(dd if="$dev" bs=$MIB iflag=count_bytes count="$written" 2>/dev/null | "${ctype}sum" | cut -d' ' -f1)
  want=$(printf '%s' "$want" | tr 'A-F' 'a-f')
  if [ "$got" != "$want" ]; then
    # A half-good image must not boot: clear its partition table.
    zero_range "$dev" 0 $MIB || true
    report_failed "$id" deploy "checksum mismatch on /dev/$root: expected $ctype $want, read back $got ($written bytes from $shown); the image or its checksum is wrong"
    return
  fi
  ud=false
  if [ "$has_ud" = true ]; then
    report_progress "$id" deploy 95 "writing user data"
    if ! api_call GET "$HOST_PATH/user-data" >"$WORK/user-data"; then
      rm -f "$WORK/user-data"
      report_failed "$id" deploy "could not fetch user data (HTTP $HTTP_STATUS)"; return
    fi
    if ! write_user_data "$dev" "$size" "$WORK/user-data"; then
      rm -f "$WORK/user-data"
      report_failed "$id" deploy "writing user data to the last MiB of /dev/$root failed: $DETAIL" "$root"; return
    fi
    rm -f "$WORK/user-data"
    ud=true
  fi
  # Evidence: which disk this is (serial, size) and the plane's regions read back from it.
  regions=$(printf '%s' "$cmd" | sed -n 's/.*"verify":{"regions":\[\([^]]*\)\]}.*/\1/p' | head -n 1)
  sample=""
  [ -n "$regions" ] && sample=",\"sampleSha256\":\"$(sample_sha256 "$dev" "$regions")\""
  post_report "$(printf '{"commandId":%s,"type":"deploy","status":"ok","data":{"rootDevice":%s,"rootDeviceSerial":%s,"rootDeviceSizeBytes":%s%s,"bytesWritten":%s,"checksumType":"%s","checksum":"%s","userDataWritten":%s}}' \
    "$(json_str "$id")" "$(json_str "/dev/$root")" "$(json_str "$(disk_serial "$root")")" "$size" "$sample" "$written" "$ctype" "$got" "$ud")"
}
