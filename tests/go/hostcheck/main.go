// hostcheck: Go's own crypto/x509 VerifyHostname (what etcd's --peer-cert-allowed-hostname and
// --client-cert-allowed-hostname call), as the judge of tls-setup's verifyHostname. Usage: hostcheck CERT.pem HOST...
// Prints a JSON object {HOST: true|false}.
package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: hostcheck CERT.pem HOST...")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		fmt.Fprintln(os.Stderr, "no PEM block")
		os.Exit(1)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := map[string]bool{}
	for _, h := range os.Args[2:] {
		out[h] = cert.VerifyHostname(h) == nil
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
