# The erase command (Metal3 automatedCleaningMode): metadata, full, secure.
# The plane names the disks to erase (command.disks: the inspected ones, by
# serial) and the regions to read back from each (command.verify); the agent
# erases exactly those disks, found by serial (kernel names can change
# between boots), and refuses one whose size changed since inspection.
# Every disk gets a record {disk, serialNumber, method, result, verified,
# sizeBytes, sampleSha256, finishedAt}; a disk that fails is named in a
# failed report and the others are still erased.

MIB=1048576

now_iso() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# zero_range DEV OFFSET LEN: write LEN zero bytes at byte OFFSET. conv=notrunc
# keeps a lab image file at its size; writes stay inside the device, since a
# block device answers a write past its end with ENOSPC.
zero_range() {
  dd if=/dev/zero of="$1" bs=$MIB seek="$2" count="$3" oflag=seek_bytes iflag=count_bytes \
    conv=notrunc,fsync 2>"$WORK/dd.err" || { DETAIL=$(grep -v 'records\|bytes' "$WORK/dd.err" | head -n 1); return 1; }
}

# verify_zero DEV FROM TO N: read 4 KiB at N offsets spread evenly over
# [FROM, TO) and succeed only if every byte read is zero. Offsets are 512-byte
# aligned, e.g. FROM=0 TO=64MiB N=64: span 67104768, offsets 0,
# 67104768*1/63 = 1065155 -> 1064960, ..., 67104768 (the last 4 KiB).
verify_zero() {
  _dev=$1 _from=$2 _to=$3 _n=$4 _k=0
  _span=$(( _to - _from - 4096 )); [ "$_span" -lt 0 ] && _span=0
  drop_caches
  while [ "$_k" -lt "$_n" ]; do
    if [ "$_n" -gt 1 ]; then _off=$(( _from + _span * _k / (_n - 1) )); else _off=$_from; fi
    _off=$(( _off / 512 * 512 ))
    _nz=$(dd if="$_dev" bs=4096 skip="$_off" iflag=skip_bytes count=1 2>/dev/null | tr -d '\000' | wc -c)
    [ "$_nz" -eq 0 ] || { DETAIL="non-zero data at byte $_off after erase"; return 1; }
    _k=$(( _k + 1 ))
  done
}

# overwrite DEV SIZE CMDID LABEL: zeros over the whole device, in ten steps so
# the workflow sees progress (a 2 TB disk takes hours at disk speed).
overwrite() {
  # Lab only: a big sparse image file is zeroed by truncating it to 0 and back,
  # which keeps it sparse; writing zeros would fill the lab machine's disk
  # (a 100 GiB simulated disk = 100 GiB written). Small images still take the
  # dd path a real disk takes, and a failing disk (/dev/full) is not a file.
  if [ -n "$SYSROOT" ] && [ -f "$1" ] && [ "$2" -gt "${IRONFLOW_LAB_DD_LIMIT:-268435456}" ]; then
    truncate -s 0 "$1" && truncate -s "$2" "$1" || { DETAIL="truncating lab image $1 failed"; return 1; }
    DETAIL="${DETAIL:+$DETAIL; }lab image file: zeroed by truncating (stays sparse)"
    report_progress "$3" erase 100 "zeroed lab image $4"
    return 0
  fi
  _size=$2 _step=$(( ($2 / 10 + MIB - 1) / MIB * MIB )) _at=0
  [ "$_step" -gt 0 ] || _step=$MIB
  while [ "$_at" -lt "$_size" ]; do
    _len=$_step; [ $(( _at + _len )) -gt "$_size" ] && _len=$(( _size - _at ))
    zero_range "$1" "$_at" "$_len" || return 1
    _at=$(( _at + _len ))
    report_progress "$3" erase $(( _at * 100 / _size )) "overwriting $4: $(( _at / MIB )) of $(( _size / MIB )) MiB"
  done
}

# try_secure DEV NAME: the device's own erase. A real ramdisk has block
# devices; in the lab /dev/<disk> is an image file, so this fails and the
# caller falls back to overwriting (and says so in the record's detail).
try_secure() {
  [ -b "$1" ] || { DETAIL="$2 is not a block device, no secure erase"; return 1; }
  case "$2" in nvme*)
    if command -v nvme >/dev/null 2>&1 && nvme format "$1" --ses=1 --force >"$WORK/sec.err" 2>&1; then
      SECURE_HOW="nvme format --ses=1"; return 0
    fi ;;
  esac
  if blkdiscard -s "$1" >"$WORK/sec.err" 2>&1; then SECURE_HOW="blkdiscard --secure"; return 0; fi
  DETAIL="secure erase unsupported on $2: $(head -n 1 "$WORK/sec.err")"
  return 1
}

# erase_disk MODE NAME CMDID [REGIONS]: prints the disk's record; returns 1 if it failed.
erase_disk() {
  mode=$1 name=$2 cmd=$3 regions=${4:-}
  dev=$(disk_dev "$name") size=$(disk_size_bytes "$name") serial=$(disk_serial "$name")
  DETAIL="" result=ok verified=false method=overwrite
  case "$mode" in
    metadata)
      # Partition tables, the GPT backup at the end and filesystem/RAID/LVM
      # superblocks all live in the first or last MiB.
      method=metadata
      edge=$MIB; [ "$size" -lt $(( 2 * MIB )) ] && edge=$(( size / 2 / 512 * 512 ))
      if zero_range "$dev" 0 "$edge" && zero_range "$dev" $(( size - edge )) "$edge"; then
        verify_zero "$dev" 0 "$edge" 32 && verify_zero "$dev" $(( size - edge )) "$size" 32 && verified=true
      else result=failed; fi ;;
    secure)
      if try_secure "$dev" "$name"; then
        method=secure-erase DETAIL=$SECURE_HOW
        if verify_zero "$dev" 0 "$size" 64; then verified=true
        else
          # Some devices return old data or 0xff after a secure discard.
          DETAIL="$SECURE_HOW left readable data; overwrote with zeros"
          method=overwrite
          overwrite "$dev" "$size" "$cmd" "$name" || result=failed
        fi
      else
        DETAIL="$DETAIL; overwrote with zeros instead"
        overwrite "$dev" "$size" "$cmd" "$name" || result=failed
      fi ;;
    *)
      overwrite "$dev" "$size" "$cmd" "$name" || result=failed ;;
  esac
  if [ "$result" = ok ] && [ "$verified" = false ] && [ "$mode" != metadata ]; then
    _d=$DETAIL
    if verify_zero "$dev" 0 "$size" 64; then verified=true; DETAIL=$_d; fi
  fi
  printf '{"disk":%s,"serialNumber":%s,"method":"%s","result":"%s","verified":%s,"sizeBytes":%s,"finishedAt":"%s"' \
    "$(json_str "$name")" "$(json_str "$serial")" "$method" "$result" "$verified" "$size" "$(now_iso)"
  # Evidence: the plane's regions read back now (it knows they must be zeros).
  if [ -n "$regions" ] && [ "$result" = ok ]; then printf ',"sampleSha256":"%s"' "$(sample_sha256 "$dev" "$regions")"; fi
  [ -n "$DETAIL" ] && printf ',"detail":%s' "$(json_str "$DETAIL")"
  printf '}'
  [ "$result" = ok ] && [ "$verified" = true ]
}

# expected_disks CMD -> "name|serial|size" lines of command.disks. The plane
# writes each as {"name":..,"serialNumber":..,"sizeBytes":N} and refuses
# serials with '"', '\' or '|', so one sed pattern reads them.
expected_disks() {
  printf '%s' "$1" | grep -o '{"name":"[^"]*","serialNumber":"[^"]*","sizeBytes":[0-9]*}' |
    sed 's/{"name":"\([^"]*\)","serialNumber":"\([^"]*\)","sizeBytes":\([0-9]*\)}/\1|\2|\3/'
}

# disk_regions CMD NAME -> the inside of command.verify.NAME.regions.
disk_regions() { printf '%s' "$1" | sed -n "s/.*\"verify\":{.*\"$2\":{\"regions\":\[\([^]]*\)\]}.*/\1/p" | head -n 1; }

# find_disk SERIAL NAME -> the disk's kernel name now: by serial, or by name
# for a disk inspection saw without one.
find_disk() {
  for _d in $(list_disks); do
    if [ -n "$1" ]; then
      [ "$(disk_serial "$_d")" = "$1" ] && { printf '%s' "$_d"; return 0; }
    elif [ "$_d" = "$2" ] && [ -z "$(disk_serial "$_d")" ]; then
      printf '%s' "$_d"; return 0
    fi
  done
  return 1
}

cmd_erase() {
  id=$1 ecmd=$2
  mode=$(jget_str "$ecmd" mode)
  case "$mode" in metadata|full|secure) ;; *) report_failed "$id" erase "unknown erase mode '$mode'"; return ;; esac
  list=$(expected_disks "$ecmd")
  # A plane that names no disks (older than evidence): every disk, as before.
  [ -n "$list" ] || list=$(for d in $(list_disks); do printf '%s|%s|%s\n' "$d" "$(disk_serial "$d")" "$(disk_size_bytes "$d")"; done)
  records="" failed="" failures="" i=0
  total=$(printf '%s\n' "$list" | grep -c .)
  while IFS='|' read -r want serial want_size; do
    [ -n "$want" ] || continue
    i=$((i + 1))
    if ! name=$(find_disk "$serial" "$want"); then
      [ -n "$failed" ] || failed=$want
      failures="$failures $want (serial ${serial:-none}) is not on this machine now;"
      continue
    fi
    now_size=$(disk_size_bytes "$name")
    if [ "$now_size" != "$want_size" ]; then
      [ -n "$failed" ] || failed=$name
      failures="$failures $name (serial ${serial:-none}) is $now_size bytes, inspection recorded $want_size: not erased;"
      continue
    fi
    report_progress "$id" erase $(( (i - 1) * 100 / total )) "erasing $name ($i of $total, $mode)"
    if rec=$(erase_disk "$mode" "$name" "$id" "$(disk_regions "$ecmd" "$want")"); then :; else
      [ -n "$failed" ] || failed=$name
      failures="$failures $name ($(printf '%s' "$rec" | sed -n 's/.*"detail":"\([^"]*\)".*/\1/p'));"
    fi
    records="$records${records:+,}$rec"
    log "erase $mode $name: $rec"
  done <<LIST
$list
LIST
  if [ -n "$failed" ]; then
    report_failed "$id" erase "erase ($mode) failed on:$failures the host must not return to the pool" "$failed"
  else
    post_report "$(printf '{"commandId":%s,"type":"erase","status":"ok","data":{"mode":"%s","disks":[%s]}}' "$(json_str "$id")" "$mode" "$records")"
  fi
}
