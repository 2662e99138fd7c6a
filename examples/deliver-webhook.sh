#!/bin/sh
# Delivers a push to a runyard hook as GitHub does: the raw body signed with the hook's secret
# (HMAC-SHA256 in hex) in X-Hub-Signature-256, and an id per delivery in X-GitHub-Delivery.
# The id is in the body too: only the body is signed, so runyard knows a delivery by its body,
# and the same body sent again starts no second run.
#
#   SECRET=<the hook's secret> examples/deliver-webhook.sh <the URL `runyard hook create` printed>
set -eu
url=$1
id=$(openssl rand -hex 16)
body='{"delivery":"'$id'","ref":"refs/heads/main","head_commit":{"id":"c0ffee","message":"fix: deploy $(whoami)"}}'
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
curl -sS -X POST "$url" \
  -H 'Content-Type: application/json' \
  -H "X-Hub-Signature-256: sha256=$signature" \
  -H "X-GitHub-Delivery: $id" \
  --data-binary "$body"
echo
