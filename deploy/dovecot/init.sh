#!/bin/sh
# Starts Dovecot and, on the first start of the mail volume, creates `support`'s shared folders,
# their ACLs and a few messages (docker-compose demo). Runs as the container's command under the
# image's tini; forwards SIGTERM to Dovecot.
set -eu
rm -f /tmp/flagpost-ready
dovecot -F &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT

i=0
until doveadm user support >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 150 ]; then
    echo "flagpost-init: Dovecot's auth service did not answer" >&2
    exit 1
  fi
  sleep 0.2
done

if [ ! -e /srv/mail/.flagpost-seeded ]; then
  for folder in Queue Billing Partners; do
    doveadm mailbox create -u support "$folder" 2>/dev/null || true
    # The service account: l r (watch), w s (flag changes through the API), a (ACLs).
    doveadm acl set -u support "$folder" user=flagpost lookup read write write-seen admin
    doveadm acl set -u support "$folder" user=alice lookup read write write-seen
    doveadm acl set -u support "$folder" user=carol lookup read write write-seen admin
  done
  # bob reads Queue and Billing only.
  doveadm acl set -u support Queue user=bob lookup read
  doveadm acl set -u support Billing user=bob lookup read
  for message in /etc/dovecot/seed/*.eml; do
    [ -e "$message" ] || continue
    folder=$(basename "$message" | cut -d- -f1)
    doveadm save -u support -m "$folder" <"$message"
  done
  doveadm acl recalc -u support
  touch /srv/mail/.flagpost-seeded
  echo "flagpost-init: created shared/support/{Queue,Billing,Partners} with ACLs and messages"
fi
touch /tmp/flagpost-ready
wait "$pid"
