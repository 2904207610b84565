# Sourced by the agent benchmarks: camd (tests/tools/camd.py) serving one pre-encoded H.264
# file at CAMS mounts rtsp://127.0.0.1:$port/cam1..camN, without encoding per client (so camd
# is not the bottleneck). Expects $repo and $tmp; sets $camd_pid (the caller's EXIT trap
# stops it) and $port, or exits 1 with camd's error output.
# camd_stream_1080p FILE: 4 s of a moving 1080p25 test picture, H.264 at a constant 4 Mbit/s
# with a keyframe a second, the camera every agent benchmark serves.
camd_stream_1080p() {
	ffmpeg -v error -nostdin -y -f lavfi -t 4 -i testsrc2=s=1920x1080:r=25 -pix_fmt yuv420p \
		-c:v libx264 -preset veryfast -bf 0 -g 25 -b:v 4000k -minrate 4000k -maxrate 4000k \
		-bufsize 2000k -x264-params nal-hrd=cbr -f h264 "$1"
}

# camd_serve NAME FILE CAMS   (NAME prefixes the error message)
camd_serve() {
	local name=$1 file=$2 cams=$3 i
	{
		printf '{"behaviours": {"file": {"file": "%s", "fps": 25}}, "mounts": [' "$file"
		for i in $(seq 1 "$cams"); do printf '%s"file:cam%d"' "$([ "$i" = 1 ] || echo ,)" "$i"; done
		printf ']}\n'
	} >"$tmp/camd.json"
	/usr/bin/python3 "$repo/tests/tools/camd.py" --port 0 --config "$tmp/camd.json" \
		>"$tmp/camd.out" 2>"$tmp/camd.err" &
	camd_pid=$!
	port=
	for _ in $(seq 1 100); do # camd prints READY within a second or two
		port=$(sed -n 's/^READY port=//p' "$tmp/camd.out")
		[ -n "$port" ] && return 0
		kill -0 "$camd_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "$name: camd not ready" >&2
	cat "$tmp/camd.err" >&2
	exit 1
}
