// Subject names encoded as Go's pkix.Name does for cfssl: RDNs in the fixed order C, ST, L, O, OU, CN,
// serialNumber; several values of one type form one multi-valued RDN; PrintableString when possible.

import { oid, seq, setOf, tlv, TAG, Der } from "./der";
import { CertRequest, NAME_FIELDS } from "../config/request";

export const ATTR_OIDS = {
  C: "2.5.4.6",
  ST: "2.5.4.8",
  L: "2.5.4.7",
  O: "2.5.4.10",
  OU: "2.5.4.11",
  CN: "2.5.4.3",
  serialNumber: "2.5.4.5",
} as const;

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

export function directoryString(s: string): Der {
  return PRINTABLE.test(s) ? tlv(TAG.PRINTABLE_STRING, Buffer.from(s, "ascii")) : tlv(TAG.UTF8_STRING, Buffer.from(s, "utf8"));
}

const atv = (type: string, value: string): Der => seq(oid(type), directoryString(value));

/** DER of the subject Name for a request. An empty subject is an empty SEQUENCE. */
export function encodeSubject(req: Pick<CertRequest, "cn" | "names" | "serialNumber">): Der {
  const rdns: Der[] = [];
  for (const f of NAME_FIELDS) {
    const values = req.names.map((n) => n[f]).filter((v): v is string => v !== undefined && v !== "");
    if (values.length) rdns.push(setOf(...values.map((v) => atv(ATTR_OIDS[f], v))));
  }
  if (req.cn) rdns.push(setOf(atv(ATTR_OIDS.CN, req.cn)));
  if (req.serialNumber) rdns.push(setOf(atv(ATTR_OIDS.serialNumber, req.serialNumber)));
  return seq(...rdns);
}
