#!/bin/sh
# build_dll.sh: libmaed_client as a Windows x64 DLL (maed_client.dll, libzmq linked in statically), cross-built
# here with mingw-w64, and its live test (tests/test_live.c) run under Wine against a bridge on this machine's
# loopback. Not part of `make test`: libzmq takes 10 to 15 minutes to build on 2 cores (`make windows-dll`).
#
#   build_dll.sh WORK_DIR [ZEROMQ_TARBALL]
#
# libzmq's source is Debian's zeromq3 4.3.4 (the libzmq3-dev this project builds against on Linux), fetched from
# the Debian archive unless ZEROMQ_TARBALL is given, and checked against its SHA-256. Needs
# x86_64-w64-mingw32-gcc and -g++ (Debian: gcc- and g++-mingw-w64-x86-64-posix), cmake, and Wine for the test.
# Writes WORK_DIR/dist/maed_client.dll, its import library libmaed_client.dll.a and maed_client.h.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
clients=$(dirname "$here")
work=$(mkdir -p "$1" && cd "$1" && pwd)
tarball=${2:-$work/zeromq3_4.3.4.orig.tar.gz}
url=http://deb.debian.org/debian/pool/main/z/zeromq3/zeromq3_4.3.4.orig.tar.gz
sha256=0ff5a531c9ffaf0dfdc7dc78d13d1383088f454896d252934c429b2554d10559
cc=x86_64-w64-mingw32-gcc-posix
cxx=x86_64-w64-mingw32-g++-posix
for tool in $cc $cxx cmake; do
    command -v "$tool" >/dev/null || { echo "build_dll: $tool not found (gcc- and g++-mingw-w64-x86-64-posix, cmake)"; exit 2; }
done

[ -f "$tarball" ] || curl -fsSL -o "$tarball" "$url"
echo "$sha256  $tarball" | sha256sum -c --quiet - || { echo "build_dll: $tarball is not zeromq3 4.3.4's source"; exit 2; }
[ -d "$work/libzmq-4.3.4" ] || tar -xzf "$tarball" -C "$work"

# Static libzmq for Windows: CURVE from its bundled TweetNaCl, the select poller, no IPC (mingw-w64 has no
# AF_UNIX headers), Windows Vista's API level and up.
if [ ! -f "$work/zmq/lib/libzmq.a" ]; then
    cmake -S "$work/libzmq-4.3.4" -B "$work/zmq-build" -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER=$cc \
        -DCMAKE_CXX_COMPILER=$cxx -DCMAKE_RC_COMPILER=x86_64-w64-mingw32-windres -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED=OFF -DBUILD_STATIC=ON -DBUILD_TESTS=OFF -DWITH_DOCS=OFF -DWITH_LIBSODIUM=OFF -DENABLE_CURVE=ON \
        -DENABLE_DRAFTS=OFF -DPOLLER=select -DZMQ_WIN32_WINNT=0x0600 -DZMQ_HAVE_IPC=0 \
        -DCMAKE_INSTALL_PREFIX="$work/zmq" >"$work/zmq-configure.log"
    cmake --build "$work/zmq-build" --target libzmq-static -j "$(nproc)" >"$work/zmq-build.log"
    mkdir -p "$work/zmq/lib" "$work/zmq/include"
    cp "$work"/zmq-build/lib/libzmq*.a "$work/zmq/lib/libzmq.a"
    cp "$work/libzmq-4.3.4/include/zmq.h" "$work/zmq/include/"
fi

# The DLL: every source of the library, its functions exported (MAED_CLIENT_BUILD), libzmq, the C++ runtime
# and winpthreads linked in, so the DLL is the one file a LabVIEW or MATLAB user copies.
mkdir -p "$work/dist"
$cc -std=c11 -O2 -Wall -Wextra -Werror -shared -DMAED_CLIENT_BUILD -DZMQ_STATIC -I"$clients/lib" -I"$clients/include" \
    -I"$work/zmq/include" -o "$work/dist/maed_client.dll" -Wl,--out-implib,"$work/dist/libmaed_client.dll.a" \
    "$clients"/lib/*.c "$work/zmq/lib/libzmq.a" -static -lstdc++ -lws2_32 -liphlpapi -lpthread
cp "$clients/include/maed_client.h" "$work/dist/"
$cc -std=c11 -O2 -Wall -Wextra -I"$clients/include" -o "$work/dist/test_live.exe" "$clients/tests/test_live.c" \
    "$work/dist/libmaed_client.dll.a" -static -lpthread
echo "build_dll: $work/dist/maed_client.dll"

wine=$(command -v wine64 || command -v wine || { test -x /usr/lib/wine/wine64 && echo /usr/lib/wine/wine64; } || true)
if [ -z "$wine" ]; then
    echo "build_dll: no Wine here: the live test was not run"
    exit 0
fi
# Against a bridge on loopback, run by the same host as ctest's live test (tests/with_bridge.py).
python=${PYTHON:-python3}
WINEPREFIX="$work/wineprefix" WINEDEBUG=-all WINEPATH="$work/dist" \
    "$python" "$clients/tests/with_bridge.py" "$wine" "$work/dist/test_live.exe"
echo "build_dll: test_live.exe passed under Wine against a live bridge"
