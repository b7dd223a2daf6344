#!/usr/bin/env bash
# pg_dp on Citus: build Citus from the vendored source when it is missing, then
# run the Citus test module (test/integration/test_citus.py starts a coordinator and two
# workers on Unix sockets, as the postgres OS user, and stops them).
#   scripts/citus.sh build     build + install Citus 13.2.2 if citus.so is missing
#   scripts/citus.sh test      build (if needed), then pytest test/integration/test_citus.py
#   scripts/citus.sh build-if-vendored   build when ../shared/vendor exists, else say why not
# Needs root for the build (apt build dependencies, make install into the
# PostgreSQL tree).  Idempotent: a second run only checks that citus.so exists.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENDOR=${CITUS_VENDOR:-$ROOT/../shared/vendor}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PYTHON=${PYTHON:-/usr/bin/python3}
CITUS_VERSION=13.2.2
BUILD_DIR=${CITUS_BUILD_DIR:-/var/tmp/pg_dp-citus-build}
PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
APT_BUILD_DEPS="libzstd-dev liblz4-dev libcurl4-openssl-dev libkrb5-dev libssl-dev \
libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev"

build() {
    if [ -f "$PKGLIBDIR/citus.so" ]; then
        return 0
    fi
    if [ ! -f "$VENDOR/citus-$CITUS_VERSION.tar.gz" ]; then
        echo "citus: $VENDOR/citus-$CITUS_VERSION.tar.gz not found; cannot build Citus" >&2
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "citus: building and installing Citus needs root" >&2
        exit 1
    fi
    # the build dependencies, with everything else pg_dp needs
    PG_DP_EXTRA_APT="$APT_BUILD_DEPS" "$ROOT/scripts/install-deps.sh"
    echo "citus: building Citus $CITUS_VERSION in $BUILD_DIR (about 2 minutes on 2 cores)"
    rm -rf "$BUILD_DIR"
    mkdir -p "$BUILD_DIR"
    tar xzf "$VENDOR/citus-$CITUS_VERSION.tar.gz" -C "$BUILD_DIR"
    cd "$BUILD_DIR/citus-$CITUS_VERSION"
    patch -p1 -s < "$VENDOR/citus-$CITUS_VERSION-pg15-minor.patch"
    ./configure -q PG_CONFIG="$PG_CONFIG" >"$BUILD_DIR/configure.log" 2>&1 \
        || { tail -n 30 "$BUILD_DIR/configure.log"; exit 1; }
    make -s -j2 >"$BUILD_DIR/make.log" 2>&1 || { tail -n 30 "$BUILD_DIR/make.log"; exit 1; }
    make -s install >>"$BUILD_DIR/make.log" 2>&1 || { tail -n 30 "$BUILD_DIR/make.log"; exit 1; }
    echo "citus: installed $PKGLIBDIR/citus.so"
}

case "${1:-test}" in
    build)
        build
        ;;
    build-if-vendored)
        # make test: test/integration/test_citus.py runs with the rest of pytest when Citus is there
        if [ -d "$VENDOR" ]; then
            build
        else
            echo "citus: SKIPPED -- $VENDOR (the vendored Citus source) is absent: test/integration/test_citus.py will be skipped"
        fi
        ;;
    test)
        if [ ! -d "$VENDOR" ]; then
            echo "citus: SKIPPED -- $VENDOR (the vendored Citus source) is absent, so the Citus tests cannot run"
            exit 0
        fi
        build
        cd "$ROOT"
        exec "$PYTHON" -m pytest -q -p no:cacheprovider test/integration/test_citus.py "${@:2}"
        ;;
    *)
        echo "usage: $0 [build|build-if-vendored|test [pytest args]]" >&2
        exit 2
        ;;
esac
