"""The local model server process: xllamacpp's OpenAI-compatible server on 127.0.0.1.

Started by :mod:`ecocascade.models.local.server`; not for direct use. Protocol with the parent:
one JSON line on stdout — ``{"ready": "http://127.0.0.1:PORT"}`` or ``{"error": "..."}`` —
then serve until stdin reaches EOF, which happens when the parent closes it *or dies* (the kernel
closes the pipe), so the server never outlives the process that started it. (Not PR_SET_PDEATHSIG:
that fires when the parent *thread* exits, and servers are started from short-lived threads.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser(prog="ecocascade-local-server")
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()

    def reply(message: dict[str, str]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    try:
        import xllamacpp
    except ImportError as error:
        reply({"error": f"xllamacpp is not installed ({error}); run scripts/setup.sh"})
        sys.exit(1)

    params = xllamacpp.CommonParams()
    params.model.path = args.gguf
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.verbosity = 1  # warnings and errors: what the parent shows when start-up fails
    try:
        server = xllamacpp.Server(params)
    except Exception as error:
        reply({"error": f"{error} (see the log for llama.cpp's reason)"})
        sys.exit(1)
    reply({"ready": server.listening_address, "pid": str(os.getpid())})
    with contextlib.suppress(KeyboardInterrupt):
        sys.stdin.read()  # blocks until the parent closes the pipe or exits
    del server


if __name__ == "__main__":
    main()
