#!/bin/sh
# covey's first boot, written by `covey provision`: systemd runs it once, from the kernel
# command line (systemd.run=, as Raspberry Pi Imager runs its firstrun.sh), with the root
# file system writable. It installs covey from the boot partition, names the Pi, sets up
# wifi and SSH, and leaves the join to covey-join.service on the next boot. Every value
# comes from a data file beside it; nothing here is filled in by provision.
set -eu

boot=$(dirname "$(readlink -f "$0")")
exec >>"$boot/covey-firstboot.log" 2>&1
echo "covey first boot: $(date)"

# Off the command line before anything else: a failure below must not run this again.
sed -i -e 's# systemd\.run=[^ ]*/covey-firstboot\.sh##' \
       -e 's# systemd\.run_success_action=reboot##' \
       -e 's# systemd\.run_failure_action=reboot##' \
       -e 's# systemd\.unit=kernel-command-line\.target##' "$boot/cmdline.txt"

want() { # unit file, as `systemctl enable` would for WantedBy=multi-user.target
    mkdir -p /etc/systemd/system/multi-user.target.wants
    ln -sf "$1" /etc/systemd/system/multi-user.target.wants/
}

install -D -m 0755 "$boot/covey" /usr/bin/covey
install -D -m 0644 "$boot/covey.service" /etc/systemd/system/covey.service
install -D -m 0644 "$boot/covey-join.service" /etc/systemd/system/covey-join.service
install -d -m 0755 /etc/covey
install -m 0644 "$boot/covey.toml" /etc/covey/covey.toml
if [ -f "$boot/covey-board.toml" ]; then
    install -m 0644 "$boot/covey-board.toml" /etc/covey/board.toml
fi
if [ -f "$boot/covey-journald.conf" ]; then
    install -D -m 0644 "$boot/covey-journald.conf" /etc/systemd/journald.conf.d/covey.conf
fi
# The token is a credential: root's only, and deleted once the node has joined.
install -m 0600 "$boot/covey-join.env" /etc/covey/join.env
want /etc/systemd/system/covey.service
want /etc/systemd/system/covey-join.service

if [ -f "$boot/covey-hostname" ]; then
    serial=$(tr -d '\000' </proc/device-tree/serial-number 2>/dev/null ||
             sed -n 's/^Serial[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo)
    serial=$(printf '%s' "$serial" | tr 'A-F' 'a-f' | tr -cd '0-9a-f')
    if [ -z "$serial" ]; then
        serial=$(tr -cd '0-9a-f' </etc/machine-id)
    fi
    serial=$(printf '%s' "$serial" | tail -c 8)
    name=$(sed "s/{serial}/$serial/g" "$boot/covey-hostname")
    echo "$name" >/etc/hostname
    if grep -q '^127\.0\.1\.1' /etc/hosts; then
        sed -i "s/^127\.0\.1\.1.*/127.0.1.1\t$name/" /etc/hosts
    else
        printf '127.0.1.1\t%s\n' "$name" >>/etc/hosts
    fi
    echo "host name: $name"
fi

if [ -f "$boot/covey-wifi.nmconnection" ]; then
    install -D -m 0600 "$boot/covey-wifi.nmconnection" \
        /etc/NetworkManager/system-connections/covey-wifi.nmconnection
    # The radio is soft-blocked until unblocked once (the country is on the command line).
    for f in /var/lib/systemd/rfkill/*:wlan; do
        if [ -e "$f" ]; then echo 0 >"$f"; fi
    done
    rfkill unblock wifi 2>/dev/null || true
fi

if [ -f "$boot/covey-authorized_keys" ]; then
    install -d -m 0700 /root/.ssh
    cat "$boot/covey-authorized_keys" >>/root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
    systemctl enable ssh || want /lib/systemd/system/ssh.service
fi

# The boot partition is FAT, readable by every user: the secrets go from it now.
rm -f "$boot/covey-join.env" "$boot/covey-wifi.nmconnection" "$boot/covey" \
      "$boot/covey-board.toml" "$boot/covey.service" "$boot/covey-join.service" \
      "$boot/covey.toml" "$boot/covey-hostname" "$boot/covey-authorized_keys" \
      "$boot/covey-journald.conf" "$boot/covey-firstboot.sh"
sync
echo "covey first boot: done; rebooting"
