#!/bin/sh
# t/bench/install.sh — installs the peers the benchmarks compare against, from Debian packages,
# only when one is missing: nginx-light, supervisor, runit, s6, wrk, hyperfine (plus strace).
#
# Installing must not leave a system service running: while apt runs, a policy-rc.d that
# answers 101 forbids every invoke-rc.d start (ours is removed afterwards; one that was there
# stays), and any nginx / supervisord / runsvdir / s6-svscan process that appeared during the
# install is killed by pid afterwards.  Nothing here relies on systemd.
set -eu

need=
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have nginx || need="$need nginx-light"
have supervisord || need="$need supervisor"
have runsv || need="$need runit"
have s6-supervise || need="$need s6"
have wrk || need="$need wrk"
have hyperfine || need="$need hyperfine"
have strace || need="$need strace"
[ -z "$need" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: missing$need and no apt-get; install them by hand" >&2
    exit 1
fi
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "bench: missing$need; not root and no sudo" >&2
        exit 1
    fi
fi

daemons() {  # pids of every process a package's service would start
    for p in /proc/[0-9]*; do
        c=$(cat "$p/comm" 2>/dev/null) || continue
        case $c in nginx|supervisord|runsvdir|runsv|s6-svscan|s6-supervise) echo "${p#/proc/}";; esac
    done | sort
}
before=$(daemons)

policy=/usr/sbin/policy-rc.d
ours=
if [ ! -e $policy ]; then
    printf '#!/bin/sh\n# written by masterd t/bench/install.sh for the length of one apt-get run\nexit 101\n' |
        $SUDO tee $policy >/dev/null
    $SUDO chmod 0755 $policy
    ours=1
fi
cleanup() { if [ -n "$ours" ]; then $SUDO rm -f $policy; fi; ours=; }
trap cleanup EXIT INT TERM

echo "bench: installing$need (apt-get, services kept from starting)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || $SUDO apt-get update
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
cleanup

# Whatever a maintainer script started anyway goes, by pid.
for pid in $(daemons); do
    if printf '%s\n' "$before" | grep -qx "$pid"; then continue; fi
    echo "bench: stopping $(cat /proc/$pid/comm 2>/dev/null) (pid $pid), started by the install"
    $SUDO kill -TERM "$pid" 2>/dev/null || true
done
exit 0
