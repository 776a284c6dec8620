#!/bin/sh
# general_master.sh — start, stop, restart, reload or ask about masterd (doc/CONTRACT.md §10).
#
# usage: general_master.sh start|stop|restart|reload|status
#
# Configure with the variables below: edit their defaults here, or set them in the environment
# (MASTERD=/opt/bin/masterd CONFIG_DIR=./etc general_master.sh start).  Relative paths are taken
# from the directory the script is run in.
#   MASTERD       the masterd binary
#   CONFIG_DIR    its config directory (-C): every *.cf is a service, *.gcf global keys
#   PID_FILE      the pid file masterd locks for its whole life (-pid-file)
#   LOG           masterd's log file (-log file,LOG); masterd reopens it on SIGUSR1, and its
#                 children's stdout/stderr go there too
#   WORK_DIR      masterd's working directory (and its services', unless server-chdir); relative
#                 paths in the .cf files are relative to CONFIG_DIR, not to it; default CONFIG_DIR
#   MASTERCTL     the masterctl binary (default: beside MASTERD, else masterctl from PATH)
#   CONTROL       masterd's control socket, when MASTERD_ARGS moves it with -control
#                 (default: PID_FILE with .ctl for .pid, where masterd puts it)
#   MASTERD_ARGS  extra masterd arguments, split on blanks (e.g. -v)
#   START_TIMEOUT seconds `start` waits for the new masterd to hold the pid-file lock (5)
#   STOP_TIMEOUT  seconds `stop` waits for masterd to finish its graceful stop (60); masterd
#                 itself waits for each child's server-stop-on-softstop-after plus 5 s, so keep
#                 this above the largest of those
#
# Commands and exit codes (0 success, 1 failure, 2 configuration invalid, 64 usage):
#   start    0 started (the lock is held); 1 a master is already running, or masterd did not
#            start (the new lines of its log are printed); 2 `masterd -t` found errors (printed;
#            nothing is started)
#   stop     SIGTERM, then wait for the lock to be free.  0 stopped, and also 0 when no master
#            runs ("masterd is not running"): like LSB init scripts and `systemctl stop`, and
#            unlike `postfix stop` (exit 1), stopping a stopped service is success, so
#            `stop; start` and `restart` work from any state.  1 the signal failed or masterd
#            was still running after STOP_TIMEOUT (it is left running; nothing is killed).
#   restart  stop + start.  The configuration is checked first: a config that would not start
#            exits 2 and leaves the running master alone.
#   reload   `masterctl reload`, synchronous: prints what changed and waits until every new
#            generation is ready or failed.  0 applied and ready; 1 not running, or a new
#            generation failed (named, with its last exit), or masterctl may not use the
#            control socket (permission denied); 2 `masterd -t` found errors
#            (printed; nothing is sent).  Without a control socket: SIGHUP, 0 when signalled.
#   status   "masterd is running (pid N)" and `masterctl status`'s table (LSB codes): 0 every
#            service runs; 1 a service is crash-looping, held down or has a process stopped by a
#            signal (sigstopped), or masterd gave no status (no control socket, masterctl
#            missing or refused); 3 "masterd is not running".
#
# Whether a master runs is only ever asked of the pid-file lock (`masterd --try-lock`), never of
# a pid that may have been reused.  Every wait polls with a bounded number of short steps.
# POSIX sh (checked with dash, bash and shellcheck); Linux (reads /proc to tell a zombie).

: "${MASTERD:=/usr/local/sbin/masterd}"
: "${CONFIG_DIR:=/etc/masterd}"
: "${PID_FILE:=/run/masterd.pid}"
: "${LOG:=/var/log/masterd.log}"
: "${WORK_DIR:=$CONFIG_DIR}"
: "${MASTERD_ARGS:=}"
: "${MASTERCTL:=}"
: "${CONTROL:=}"
: "${START_TIMEOUT:=5}"
: "${STOP_TIMEOUT:=60}"

PROG=${0##*/}

say() { printf '%s\n' "$*"; }
err() { printf '%s: %s\n' "$PROG" "$*" >&2; }

usage() {
    say "usage: $PROG start|stop|restart|reload|status" >&2
    exit 64
}

# An absolute path: the script may change directory before it runs masterd.
abspath() {
    case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$PWD" "$1" ;;
    esac
}

check_seconds() {
    case $2 in
    '' | *[!0-9]*)
        err "$1 must be a whole number of seconds, not '$2'"
        exit 64
        ;;
    esac
}

check_settings() {
    check_seconds START_TIMEOUT "$START_TIMEOUT"
    check_seconds STOP_TIMEOUT "$STOP_TIMEOUT"
    # A bare name (no slash) is looked up in PATH, as the shell would.
    case $MASTERD in
    */*) MASTERD=$(abspath "$MASTERD") ;;
    esac
    if ! command -v "$MASTERD" >/dev/null 2>&1 || [ -d "$MASTERD" ]; then
        err "$MASTERD: no such program (set MASTERD)"
        exit 1
    fi
    CONFIG_DIR=$(abspath "$CONFIG_DIR")
    PID_FILE=$(abspath "$PID_FILE")
    LOG=$(abspath "$LOG")
    WORK_DIR=$(abspath "$WORK_DIR")
}

# Short sleeps where sleep(1) takes fractions (GNU, busybox); whole seconds elsewhere.
if sleep 0.01 2>/dev/null; then
    STEP=0.05 STEPS_PER_SEC=20
else
    STEP=1 STEPS_PER_SEC=1
fi

# 0 while process $1 exists and is not a zombie (kill -0 alone says yes to a zombie).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ -r "/proc/$1/stat" ] || return 0
    IFS= read -r st <"/proc/$1/stat" || return 0
    st=${st##*) }
    [ "${st%% *}" != Z ]
}

# 0 when a master holds the pid-file lock.  masterd --try-lock exits 0 when the lock is free.
running() {
    "$MASTERD" -pid-file "$PID_FILE" --try-lock
    [ $? -eq 1 ]
}

# Prints the pid written in PID_FILE.  A master that has just taken the lock may not have
# written it yet, so look a few times.
read_pid() {
    i=0
    while [ "$i" -lt 10 ]; do
        pid=
        [ -r "$PID_FILE" ] && IFS= read -r pid <"$PID_FILE"
        case $pid in
        '' | *[!0-9]*) ;;
        *)
            if [ "$pid" -gt 1 ]; then
                printf '%s' "$pid"
                return 0
            fi
            ;;
        esac
        i=$((i + 1))
        sleep "$STEP"
    done
    return 1
}

# Runs masterd -t where masterd will run; prints its errors and returns its status (2 invalid).
check_config() {
    out=$(cd "$WORK_DIR" 2>&1 && "$MASTERD" -C "$CONFIG_DIR" -t 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ]; then
        [ -n "$out" ] && say "$out" >&2
        if [ "$rc" -eq 2 ]; then
            err "configuration in $CONFIG_DIR is invalid"
        else
            err "cannot check the configuration ($MASTERD exited $rc)"
            rc=1
        fi
        return "$rc"
    fi
    return 0
}

# What masterd logged after byte offset $1 (this start's lines).
log_since() {
    tail -c +$(($1 + 1)) "$LOG" 2>/dev/null
}

# The log has masterd's "started" line after byte offset $1: a line of masterd's own (it
# starts with the date and md_master.c), not one a server sent through a masterlog socket
# (those start with a "[SERVICE pid PID]" stamp) or wrote to its stderr in the middle of a line.
started_logged() {
    log_since "$1" | grep -q '^[0-9/]* [0-9:]* UTC INFO: md_master\.c:[a-z_]*:[0-9]*: PID:[0-9]* masterd .* started (pid [0-9]*)'
}

do_start() {
    if running; then
        pid=$(read_pid) || pid=unknown
        err "a master is already running (pid $pid)"
        return 1
    fi
    check_config || return $?
    if [ ! -d "$WORK_DIR" ]; then
        err "working directory $WORK_DIR: no such directory"
        return 1
    fi
    if ! (: >>"$LOG") 2>/dev/null; then
        err "cannot write the log file $LOG"
        return 1
    fi
    # Only this start's lines of the log are shown if it fails.
    size=0
    [ -f "$LOG" ] && size=$(wc -c <"$LOG" | tr -d ' ')
    # setsid: a session of its own, so the terminal's SIGINT/SIGHUP never reach masterd (it
    # handles both: stop and reload).  The script has no job control, so the background job is
    # not a group leader and setsid execs masterd without forking: $! is masterd's pid.
    detach="setsid"
    command -v setsid >/dev/null 2>&1 || detach="nohup"
    # shellcheck disable=SC2086 # MASTERD_ARGS is a list of words
    (cd "$WORK_DIR" && exec "$detach" "$MASTERD" -C "$CONFIG_DIR" -pid-file "$PID_FILE" \
        -log "file,$LOG" $MASTERD_ARGS) </dev/null >>"$LOG" 2>&1 &
    child=$!
    i=0
    limit=$((START_TIMEOUT * STEPS_PER_SEC))
    while [ "$i" -le "$limit" ]; do
        # masterd takes the lock before it binds, so the lock alone does not mean it started:
        # wait for its "started" line too (written once every socket is bound), unless
        # MASTERD_ARGS sends its log elsewhere.
        if running && { started_logged "$size" || case " $MASTERD_ARGS " in *" -log "*) true ;; *) false ;; esac; }; then
            pid=$(read_pid) || pid=unknown
            say "masterd started (pid $pid)"
            return 0
        fi
        if ! alive "$child"; then
            wait "$child"
            rc=$?
            # Status 0 before the lock: a wrapper that forked; keep polling for the lock.
            if [ "$rc" -ne 0 ]; then
                err "masterd did not start (exit $rc); $LOG says:"
                log_since "$size" | tail -n 20 >&2
                [ "$rc" -eq 2 ] && return 2
                return 1
            fi
        fi
        i=$((i + 1))
        sleep "$STEP"
    done
    err "masterd (pid $child) did not take the lock on $PID_FILE within $START_TIMEOUT s; $LOG says:"
    log_since "$size" | tail -n 20 >&2
    return 1
}

do_stop() {
    if ! running; then
        say "masterd is not running"
        return 0
    fi
    if ! pid=$(read_pid); then
        err "a master holds the lock on $PID_FILE but the file has no pid"
        return 1
    fi
    if ! kill -TERM "$pid"; then
        err "cannot signal masterd (pid $pid)"
        return 1
    fi
    say "stopping masterd (pid $pid)"
    i=0
    limit=$((STOP_TIMEOUT * STEPS_PER_SEC))
    while [ "$i" -le "$limit" ]; do
        if ! running; then
            say "masterd stopped"
            return 0
        fi
        i=$((i + 1))
        sleep "$STEP"
    done
    err "masterd (pid $pid) is still running after $STOP_TIMEOUT s (left running; see $LOG)"
    return 1
}

do_restart() {
    if running; then
        check_config || return $?
        do_stop || return $?
    fi
    do_start
}

do_reload() {
    if ! running; then
        err "masterd is not running"
        return 1
    fi
    pid=$(read_pid) || {
        err "a master holds the lock on $PID_FILE but the file has no pid"
        return 1
    }
    check_config || {
        rc=$?
        err "not reloaded: masterd (pid $pid) keeps its running configuration"
        return "$rc"
    }
    say "masterd (pid $pid) reloading $CONFIG_DIR"
    ctl reload
    rc=$?
    case $rc in
    3 | 126 | 127) ;; # no control socket (-control none), or no masterctl: the blind reload
    4) return 1 ;;    # not allowed (masterctl said so): a failure, in this script's codes
    *) return "$rc" ;;
    esac
    if ! kill -HUP "$pid"; then
        err "cannot signal masterd (pid $pid)"
        return 1
    fi
    say "masterd (pid $pid) signalled (SIGHUP; its log says how the reload went)"
    return 0
}

# masterctl, beside masterd unless MASTERCTL says otherwise, on the control socket.
ctl() {
    if [ -z "$MASTERCTL" ]; then
        MASTERCTL=masterctl
        case $MASTERD in
        */*) [ -x "${MASTERD%/*}/masterctl" ] && MASTERCTL=${MASTERD%/*}/masterctl ;;
        esac
    fi
    if [ -n "$CONTROL" ]; then
        "$MASTERCTL" -control "$(abspath "$CONTROL")" "$@"
    else
        "$MASTERCTL" -pid-file "$PID_FILE" "$@"
    fi
}

do_status() {
    if ! running; then
        say "masterd is not running"
        return 3
    fi
    pid=$(read_pid) || pid=unknown
    say "masterd is running (pid $pid)"
    table=$(ctl status) || {
        err "no status from masterd's control socket"
        return 1
    }
    say "$table"
    # A service line starts in column 1 (details are indented); its second word is the state.
    if printf '%s\n' "$table" | awk 'NR > 1 && /^[^ ]/ && ($2 == "crash-looping" || $2 == "held" || $2 == "sigstopped") { bad = 1 }
                                     END { exit bad ? 0 : 1 }'; then
        return 1
    fi
    return 0
}

[ $# -eq 1 ] || usage
check_settings
case $1 in
start) do_start ;;
stop) do_stop ;;
restart) do_restart ;;
reload) do_reload ;;
status) do_status ;;
*) usage ;;
esac
