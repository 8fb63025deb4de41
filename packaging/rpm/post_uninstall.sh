# certfront %postun: systemd forgets a removed unit. An upgrade does not restart a running
# certfront: check the new version's `certfront check`, then `systemctl restart certfront`.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || :
fi
