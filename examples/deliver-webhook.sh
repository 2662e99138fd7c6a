#!/bin/sh
# Delivers a push to a runyard hook as GitHub does: the raw body signed with the hook's secret
# (HMAC-SHA256 in hex) in X-Hub-Signature-256, and an id per delivery in X-GitHub-Delivery.
#
#   SECRET=<the hook's secret> examples/deliver-webhook.sh http://127.0.0.1:8080 deploy-on-push
set -eu
url=$1
hook=$2
body='{"ref":"refs/heads/main","head_commit":{"id":"c0ffee","message":"fix: deploy $(whoami)"}}'
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.* //')
curl -sS -X POST "$url/api/hooks/$hook" \
  -H 'Content-Type: application/json' \
  -H "X-Hub-Signature-256: sha256=$signature" \
  -H "X-GitHub-Delivery: $(openssl rand -hex 16)" \
  --data-binary "$body"
echo
