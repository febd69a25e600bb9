/**
 * A minimal IPMI FRU image (Platform Management FRU Information Storage
 * Definition v1.0): the common header and a Product Info Area, which is
 * where `ipmitool fru print` finds "Product Manufacturer", "Product Name"
 * and "Product Serial". Enough for the lab's ipmi_sim to report what a real
 * server's BMC would.
 */
export function productFru(p: { manufacturer: string; product: string; serial: string; partNumber?: string }): number[] {
  const field = (s: string) => {
    const bytes = [...Buffer.from(s.slice(0, 63), 'latin1')];
    return [0xc0 | bytes.length, ...bytes]; // type 11b = 8-bit ASCII+Latin1, then the length
  };
  const area = [
    0x01, // format version
    0x00, // length in 8-byte units, filled in below
    0x00, // language: English
    ...field(p.manufacturer),
    ...field(p.product),
    ...field(p.partNumber ?? ''),
    ...field(''), // product version
    ...field(p.serial),
    ...field(''), // asset tag
    ...field(''), // FRU file id
    0xc1, // end of fields
  ];
  // Pad so area + checksum is a multiple of 8: e.g. 37 bytes → 39 (+ checksum = 40).
  while ((area.length + 1) % 8 !== 0) area.push(0x00);
  area[1] = (area.length + 1) / 8;
  area.push(zeroChecksum(area));
  // Common header: version 1, only the product area, at offset 8 bytes (1 unit).
  const header = [0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
  header.push(zeroChecksum(header));
  return [...header, ...area];
}

/** The byte that makes the sum of all bytes 0 mod 256: [0x01,0x01] → 0xfe. */
function zeroChecksum(bytes: number[]): number {
  return (0x100 - (bytes.reduce((a, b) => a + b, 0) & 0xff)) & 0xff;
}
