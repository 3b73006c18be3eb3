#!/bin/sh
# spec/helpers/mkcerts.sh DIR -- the test PKI for the TLS specs (openssl):
#   ca.crt/.key              the test CA
#   server.crt/.key          localhost, 127.0.0.1 and ::1, signed by the CA
#   client.crt/.key          a client certificate signed by the CA (mutual TLS)
#   other-ca.crt, other-server.crt/.key   another CA and a localhost/127.0.0.1
#                            certificate it signed (not trusted by the specs)
#   wrong-host.crt/.key      signed by the CA, naming only wrong.example
# EC P-256 keys, valid 2 days. Fails loudly: the specs need all of them.
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name subject
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -days 2 -subj "/CN=$2" -out "$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name subject ca san usage
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n%s\n' "$5" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "hicache test CA"
ca other-ca "another CA"
leaf server localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
leaf client "hicache test client" ca "" clientAuth
leaf other-server localhost other-ca "subjectAltName=DNS:localhost,IP:127.0.0.1" serverAuth
leaf wrong-host wrong.example ca "subjectAltName=DNS:wrong.example" serverAuth
chmod 600 ./*.key
