# Shared by go/build.sh and go-grpc/build.sh (sourced, not run): the Go
# environment of our driver builds and `run`, which runs a command with its
# output in "$log" and, on failure, prints that output and exits non-zero.
# The caller sets `log` (a temporary file it removes).

# The modules live inside the project's git work tree; VCS stamping is not
# wanted (and fails on checkouts owned by another user).
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
# Never switch toolchains behind the caller's back (go.mod asks for go 1.22).
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "build.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}
