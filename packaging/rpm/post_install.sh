# certfront %post: the certfront user and group, then /etc/certfront (0750 root:certfront)
# and /var/lib/certfront (0700 certfront). The service is neither enabled nor started: the
# admin runs `certfront check`, then `systemctl enable --now certfront`.
systemd-sysusers certfront.conf || :
systemd-tmpfiles --create certfront.conf || :
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
