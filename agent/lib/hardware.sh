# Hardware discovery from /proc and /sys (under $SYSROOT, so the lab runs the
# same code against a synthesized tree) and the inspect command.

# list_disks: kernel names of whole disks worth inspecting, erasing or
# deploying to. Loop, RAM, optical and device-mapper nodes are not disks.
list_disks() {
  for d in "$SYSROOT"/sys/block/*; do
    [ -e "$d/size" ] || continue
    n=${d##*/}
    case "$n" in loop*|ram*|zram*|sr*|fd*|dm-*|md*|nbd*) continue ;; esac
    printf '%s\n' "$n"
  done
}

# disk_size_bytes NAME: /sys/block/X/size counts 512-byte sectors whatever
# the logical block size is (e.g. 2097152 sectors -> 1073741824 bytes).
disk_size_bytes() { echo $(( $(cat "$SYSROOT/sys/block/$1/size") * 512 )); }
disk_serial() { trim "$(read_first "$SYSROOT/sys/block/$1/device/serial" "$SYSROOT/sys/block/$1/serial")"; }
disk_model() { trim "$(read_first "$SYSROOT/sys/block/$1/device/model")"; }
disk_vendor() { trim "$(read_first "$SYSROOT/sys/block/$1/device/vendor")"; }
# wwid looks like "naa.5000c500a1b2c3d4" or "eui.…"; Metal3's wwn hint is the bare id.
disk_wwn() { trim "$(read_first "$SYSROOT/sys/block/$1/wwid" "$SYSROOT/sys/block/$1/device/wwid")" | sed 's/^[a-z]*\.//'; }
disk_rotational() {
  if [ "$(read_first "$SYSROOT/sys/block/$1/queue/rotational")" = 1 ]; then echo true; else echo false; fi
}
disk_dev() { printf '%s/dev/%s' "$SYSROOT" "$1"; }

# list_macs: MACs of the physical NICs, one per line (lo has 00:00:..).
list_nics() {
  for n in "$SYSROOT"/sys/class/net/*; do
    [ -r "$n/address" ] || continue
    name=${n##*/}
    [ "$name" = lo ] && continue
    printf '%s %s\n' "$name" "$(cat "$n/address")"
  done
}

inspection_json() {
  cpuinfo="$SYSROOT/proc/cpuinfo"
  count=$(grep -c '^processor' "$cpuinfo")
  model=$(sed -n 's/^model name[[:space:]]*: *//p' "$cpuinfo" | head -n 1)
  mhz=$(sed -n 's/^cpu MHz[[:space:]]*: *\([0-9]*\).*/\1/p' "$cpuinfo" | head -n 1)
  mem_kib=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' "$SYSROOT/proc/meminfo")
  printf '{"cpu":{"arch":%s,"model":%s,"count":%s' "$(json_str "$(uname -m)")" "$(json_str "$model")" "${count:-0}"
  [ -n "$mhz" ] && printf ',"mhz":%s' "$mhz"
  printf '},"memoryMiB":%s,"disks":[' $(( ${mem_kib:-0} / 1024 ))
  sep=""
  for d in $(list_disks); do
    printf '%s{"name":%s,"sizeBytes":%s,"serialNumber":%s,"model":%s,"rotational":%s' "$sep" \
      "$(json_str "$d")" "$(disk_size_bytes "$d")" "$(json_str "$(disk_serial "$d")")" \
      "$(json_str "$(disk_model "$d")")" "$(disk_rotational "$d")"
    v=$(disk_vendor "$d"); [ -n "$v" ] && printf ',"vendor":%s' "$(json_str "$v")"
    w=$(disk_wwn "$d"); [ -n "$w" ] && printf ',"wwn":%s' "$(json_str "$w")"
    printf '}'
    sep=,
  done
  printf '],"nics":['
  sep=""
  list_nics | while read -r name mac; do
    printf '%s{"name":%s,"mac":%s' "$sep" "$(json_str "$name")" "$(json_str "$mac")"
    # The address comes from the live kernel, which in the lab is the host's:
    # only a real ramdisk (no SYSROOT) reports it.
    if [ -z "$SYSROOT" ]; then
      ip4=$(ip -4 -o addr show dev "$name" 2>/dev/null | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
      [ -n "$ip4" ] && printf ',"ip":%s' "$(json_str "$ip4")"
    fi
    speed=$(read_first "$SYSROOT/sys/class/net/$name/speed" 2>/dev/null)
    case "$speed" in ''|-*|*[!0-9]*) ;; *) printf ',"speedMbps":%s' "$speed" ;; esac
    printf '}'
    sep=,
  done
  dmi="$SYSROOT/sys/class/dmi/id"
  printf '],"system":{'
  sep=""
  for pair in manufacturer:sys_vendor productName:product_name serialNumber:product_serial; do
    v=$(trim "$(read_first "$dmi/${pair#*:}")")
    if [ -n "$v" ]; then printf '%s"%s":%s' "$sep" "${pair%%:*}" "$(json_str "$v")"; sep=,; fi
  done
  if [ -d "$SYSROOT/sys/firmware/efi" ]; then printf '},"bootMode":"UEFI"}'; else printf '},"bootMode":"legacy"}'; fi
}

cmd_inspect() {
  id=$1
  data=$(inspection_json)
  post_report "$(printf '{"commandId":%s,"type":"inspect","status":"ok","data":%s}' "$(json_str "$id")" "$data")"
}
