"""Run a module or script like ``python -m``/``python file``, then print the process's peak RSS.

Usage: ``python bench/peak.py -m ingest files ...`` or ``python bench/peak.py -c "code"``. The last
stderr line is ``BENCH_PEAK_RSS_MB=<n>`` (VmHWM: the peak resident memory of this process image).
"""

import os
import resource
import runpy
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository, not bench/


def _report() -> None:
    # VmHWM belongs to this process image (ru_maxrss would carry the forking parent's high-water mark).
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    peak_kb = int(line.split()[1])
    except OSError:
        pass
    print(f"BENCH_PEAK_RSS_MB={peak_kb / 1024:.1f}", file=sys.stderr)


def main() -> None:
    args = sys.argv[1:]
    code = 0
    try:
        if args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        elif args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            exec(compile(args[1], "<bench>", "exec"), {"__name__": "__main__"})
        else:
            sys.argv = args
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    _report()
    sys.exit(code)


main()
