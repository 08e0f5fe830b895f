// crlcheck: Go's own verdict on a CRL written by tls-setup, for tests/etcd-crl.test.ts.
//
//	crlcheck [-ca ca.pem] FILE
//
// FILE is parsed with x509.ParseCRL (what etcd 3.4 and 3.5 call for --client-crl-file; PEM or DER) and, when it is
// DER, with x509.ParseRevocationList (what etcd 3.6 calls; DER only). For DER it also checks strict DER: every
// element re-encodes to the same bytes (minimal lengths, minimal INTEGERs, no indefinite lengths, nothing after the
// end) and no constructed element is empty (no empty revokedCertificates or crlExtensions SEQUENCE). With -ca, the
// signature is checked against that CA certificate. It prints one JSON object; exit 1 with a message on any failure.
package main

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"time"
)

type result struct {
	Form string `json:"form"`
	// serials as lower-case hex without leading zero octets, in the CRL's order
	ParseCRLSerials            []string `json:"parseCRLSerials"`
	ParseRevocationListSerials []string `json:"parseRevocationListSerials"`
	ParseRevocationListError   string   `json:"parseRevocationListError,omitempty"`
	Number                     string   `json:"number,omitempty"`
	ThisUpdate                 string   `json:"thisUpdate"`
	NextUpdate                 string   `json:"nextUpdate"`
	StrictDER                  bool     `json:"strictDER"`
	SignatureCheckedAgainstCA  bool     `json:"signatureCheckedAgainstCA"`
}

func serialHex(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// reencode parses one element and builds it again from its parts; the bytes must be the same.
func reencode(der []byte, path string) ([]byte, error) {
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%s: %d bytes after the element", path, len(rest))
	}
	content := v.Bytes
	if v.IsCompound {
		if len(content) == 0 {
			return nil, fmt.Errorf("%s: an empty constructed element (class %d tag %d)", path, v.Class, v.Tag)
		}
		var built []byte
		for i, in := 0, content; len(in) > 0; i++ {
			var child asn1.RawValue
			r, err := asn1.Unmarshal(in, &child)
			if err != nil {
				return nil, fmt.Errorf("%s/%d: %v", path, i, err)
			}
			again, err := reencode(child.FullBytes, fmt.Sprintf("%s/%d", path, i))
			if err != nil {
				return nil, err
			}
			built = append(built, again...)
			in = r
		}
		content = built
	} else if v.Class == asn1.ClassUniversal && v.Tag == asn1.TagInteger {
		// encoding/asn1 refuses an INTEGER that is not minimally encoded
		var n *big.Int
		if _, err := asn1.Unmarshal(v.FullBytes, &n); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
	} else if v.Class == asn1.ClassUniversal && v.Tag == asn1.TagBoolean {
		if len(content) != 1 || (content[0] != 0 && content[0] != 0xff) {
			return nil, fmt.Errorf("%s: a BOOLEAN that is not DER", path)
		}
	}
	out, err := asn1.Marshal(asn1.RawValue{Class: v.Class, Tag: v.Tag, IsCompound: v.IsCompound, Bytes: content})
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return out, nil
}

func strictDER(der []byte) error {
	again, err := reencode(der, "CRL")
	if err != nil {
		return err
	}
	if !bytes.Equal(again, der) {
		return errors.New("re-encoding gives different bytes")
	}
	return nil
}

func run() error {
	caFile := flag.String("ca", "", "CA certificate (PEM) to check the CRL's signature with")
	flag.Parse()
	if flag.NArg() != 1 {
		return errors.New("usage: crlcheck [-ca ca.pem] FILE")
	}
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		return err
	}
	res := result{Form: "der"}
	der := data
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		res.Form = "pem"
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "X509 CRL" {
			return errors.New("no X509 CRL PEM block")
		}
		der = block.Bytes
	}

	// etcd 3.4/3.5: x509.ParseCRL (PEM or DER)
	old, err := x509.ParseCRL(data)
	if err != nil {
		return fmt.Errorf("x509.ParseCRL: %v", err)
	}
	res.ParseCRLSerials = []string{}
	for _, r := range old.TBSCertList.RevokedCertificates {
		res.ParseCRLSerials = append(res.ParseCRLSerials, serialHex(r.SerialNumber))
	}
	res.ThisUpdate = old.TBSCertList.ThisUpdate.UTC().Format(time.RFC3339)
	res.NextUpdate = old.TBSCertList.NextUpdate.UTC().Format(time.RFC3339)

	// etcd 3.6: x509.ParseRevocationList (DER only). Given PEM, it must refuse (that is why crl.der exists).
	rl, rlErr := x509.ParseRevocationList(data)
	if res.Form == "pem" {
		if rlErr == nil {
			return errors.New("x509.ParseRevocationList accepted PEM; expected it to take DER only")
		}
		res.ParseRevocationListError = rlErr.Error()
	} else {
		if rlErr != nil {
			return fmt.Errorf("x509.ParseRevocationList: %v", rlErr)
		}
		res.ParseRevocationListSerials = []string{}
		for _, r := range rl.RevokedCertificates {
			res.ParseRevocationListSerials = append(res.ParseRevocationListSerials, serialHex(r.SerialNumber))
		}
		if rl.Number != nil {
			res.Number = rl.Number.String()
		}
	}

	if err := strictDER(der); err != nil {
		return fmt.Errorf("not strict DER: %v", err)
	}
	res.StrictDER = true

	if *caFile != "" {
		caPEM, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		block, _ := pem.Decode(caPEM)
		if block == nil {
			return fmt.Errorf("%s: no PEM block", *caFile)
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %v", *caFile, err)
		}
		if err := ca.CheckCRLSignature(old); err != nil {
			return fmt.Errorf("signature (ParseCRL): %v", err)
		}
		if rl != nil {
			if err := rl.CheckSignatureFrom(ca); err != nil {
				return fmt.Errorf("signature (ParseRevocationList): %v", err)
			}
		}
		res.SignatureCheckedAgainstCA = true
	}

	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crlcheck:", err)
		os.Exit(1)
	}
}
