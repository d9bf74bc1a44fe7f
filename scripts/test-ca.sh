#!/usr/bin/env bash
# Certificates for TLS tests, in directory $1 (created): a private CA (ca.pem, ca.key), a server certificate for
# 127.0.0.1 and localhost that it signed (server.crt, server.key), a client certificate it signed (client.crt,
# client.key), and a second, unrelated self-signed CA (other.pem) for "wrong CA" cases. Valid for one day.
set -euo pipefail
dir="$1"
mkdir -p "$dir"
cd "$dir"

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=hule-test-ca
openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 1 -subj /CN=other
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
echo subjectAltName=IP:127.0.0.1,DNS:localhost > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile san.ext
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=hule-client
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.crt -days 1
