#!/bin/sh
# windows_check.sh: libmaed_client's sources cross-compiled for Windows x64 with mingw-w64 (warnings
# as errors), and its ZeroMQ-free test (test_wire.c: the msgpack reader against hostile headers, the
# push queue) linked as a Windows program and run under Wine, in seconds. The DLL itself, with libzmq
# built for Windows (minutes), is `make windows-dll` (bridge/clients/README.md, "Windows").
#   windows_check.sh SOURCE_DIR WORK_DIR     (exit 77, ctest's "skipped", without mingw-w64 or Wine)
set -eu
src=$1 work=$2
cc=$(command -v x86_64-w64-mingw32-gcc || true)
wine=$(command -v wine64 || command -v wine || { test -x /usr/lib/wine/wine64 && echo /usr/lib/wine/wine64; } || true)
if [ -z "$cc" ] || [ -z "$wine" ]; then
    echo "windows_check: needs x86_64-w64-mingw32-gcc (gcc-mingw-w64-x86-64-posix) and wine64; skipping"
    exit 77
fi
mkdir -p "$work/include"
cp "$(dirname "$0")/../include/maed_client.h" "$work/include/"
# zmq.h declares the same API on every platform; the Linux copy stands in for the Windows one.
zmq_h=/usr/include/zmq.h
[ -f "$zmq_h" ] && cp "$zmq_h" "$work/include/"
for f in "$src"/lib/*.c; do
    "$cc" -std=c11 -O2 -Wall -Wextra -Werror -DMAED_CLIENT_BUILD -I"$src/lib" -I"$work/include" \
        -c -o "$work/$(basename "$f" .c).o" "$f"
done
"$cc" -std=c11 -O2 -Wall -Wextra -Werror -I"$src/lib" -I"$src/include" -static -o "$work/test_wire.exe" \
    "$src/tests/test_wire.c" "$work/mp.o" "$work/wire.o" "$work/outbox.o"
WINEPREFIX="$work/wineprefix" WINEDEBUG=-all "$wine" "$work/test_wire.exe"
