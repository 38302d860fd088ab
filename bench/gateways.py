"""Starting what the bench measures, each in its own process pinned to one core: the fake upstream,
our gateway, nginx as a plain reverse proxy, LiteLLM's proxy; and reading their CPU time and memory
from ``/proc`` (Linux; elsewhere those columns stay empty)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BENCH_DIR",
    "Gateway",
    "Proc",
    "cores",
    "free_port",
    "litellm_command",
    "start_litellm",
    "start_nginx",
    "start_ours",
    "start_upstream",
]

BENCH_DIR = Path(__file__).resolve().parent
CHAT_BODY = json.dumps({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}]}).encode()
API_KEY = "sk-bench-0000"
REAL_MODELS = ("bench-real-20", "bench-real-200")
"""The realistic-stream profile's models (fake_upstream: first token after 20 ms, n chunks 20 ms apart)."""
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cores() -> tuple[set[int] | None, set[int] | None]:
    """(load side, gateway side): the upstream and load generator share the first core, the
    gateway gets the rest. None when the machine has one core (nothing is pinned)."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    out = []
    for child in text.split():
        out.append(int(child))
        out.extend(_children(int(child)))
    return out


@dataclass
class Proc:
    """A process we started (and its children, for CPU time and memory)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    extra_pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        return [self.pid, *_children(self.pid), *self.extra_pids]

    def cpu_seconds(self) -> float | None:
        total = 0.0
        found = False
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            found = True
            total += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
        return total if found else None

    def memory_mb(self, key: str = "VmHWM") -> float | None:
        """Sum over the process tree of ``VmHWM`` (peak RSS) or ``VmRSS`` (current), in MB."""
        total = 0
        found = False
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        found = True
            except OSError:
                continue
        return total / 1024 if found else None

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, argv: list[str], workdir: Path, cpus: set[int] | None, env: dict[str, str] | None = None) -> Proc:
    log = workdir / f"{name}.log"
    handle = log.open("wb")

    def pin() -> None:
        os.setsid()  # its own process group: stopping it stops its workers too
        if cpus:
            os.sched_setaffinity(0, cpus)

    popen = subprocess.Popen(
        argv,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        preexec_fn=pin,
    )
    handle.close()
    return Proc(name, popen, log)


def post_ok(port: int, path: str, body: bytes = CHAT_BODY, timeout: float = 5.0) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("POST", path, body, {"content-type": "application/json", "authorization": f"Bearer {API_KEY}"})
            response = conn.getresponse()
            response.read()
            return response.status == 200
        finally:
            conn.close()
    except OSError:
        return False


def wait_first_200(proc: Proc, port: int, path: str, started: float, limit: float) -> float:
    """Seconds from spawning to the first 200 on a chat completion."""
    while time.perf_counter() - started < limit:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        if post_ok(port, path, timeout=limit):
            return time.perf_counter() - started
        time.sleep(0.01)
    raise RuntimeError(f"{proc.name} gave no 200 within {limit:.0f} s:\n{proc.tail()}")


@dataclass
class Gateway:
    name: str
    port: int
    path: str
    proc: Proc | None
    startup_s: float | None = None
    note: str = ""


def start_upstream(workdir: Path, cpus: set[int] | None) -> Gateway:
    port = free_port()
    proc = spawn("upstream", [sys.executable, str(BENCH_DIR / "fake_upstream.py"), "--port", str(port)], workdir, cpus)
    started = time.perf_counter()
    return Gateway(
        "direct", port, "/v1/chat/completions", proc, wait_first_200(proc, port, "/v1/chat/completions", started, 30)
    )


def start_ours(workdir: Path, cpus: set[int] | None, upstream: int, workers: int = 1) -> Gateway:
    port = free_port()
    config = workdir / "llm-factory.yaml"
    base = f"http://127.0.0.1:{upstream}/v1"
    config.write_text(
        "providers:\n"
        + "".join(
            f"  - provider: openai\n    model_name: {name}\n    api_key: {API_KEY}\n    api_base: {base}\n"
            for name in ("bench-model", "bench-paced", *REAL_MODELS)
        )
        # The same realistic streams through a translated provider (Gemini's wire format from the
        # same upstream: each event decoded, translated to OpenAI chunks, validated, serialised).
        + "".join(
            f"  - provider: gemini\n    model_name: translated-{name.removeprefix('bench-')}\n    model: {name}\n"
            f"    api_key: {API_KEY}\n    api_base: http://127.0.0.1:{upstream}\n"
            for name in REAL_MODELS
        )
        # The 2,048-stream level measures the gateway, not its default caps (1,000 connections in
        # flight per worker, 1,000 upstream connections: past them a 503 / a refused connection,
        # as documented). A deployment expecting that many raises them the same way.
        + "router:\n  max_connections: 4096\n  max_connections_per_host: 4096\n"
        + "server:\n  limit_concurrency: 4096\n"
    )
    argv = [sys.executable, "-m", "llm_factory_server", "--config", str(config), "--port", str(port)]
    argv += ["--workers", str(workers)]  # default log level: one access line per request, as deployed
    started = time.perf_counter()
    proc = spawn("llm-factory", argv, workdir, cpus)
    startup = wait_first_200(proc, port, "/v1/chat/completions", started, 60)
    return Gateway("llm-factory", port, "/v1/chat/completions", proc, startup)


NGINX_CONF = """
worker_processes {workers};
worker_rlimit_nofile 20000;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 10000; }}
http {{
    access_log off;
    keepalive_requests 100000000;  # the driver's keep-alive connections are never closed under it
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream fake {{ server 127.0.0.1:{upstream}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def start_nginx(workdir: Path, cpus: set[int] | None, upstream: int, binary: str | None) -> Gateway | str:
    """nginx as a plain keep-alive reverse proxy (one worker): the floor a gateway is held to."""
    binary = (
        binary
        or shutil.which("nginx")
        or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    )
    if binary is None:
        return "nginx not found (apt-get install nginx, or --nginx PATH)"
    port = free_port()
    ndir = workdir / "nginx"
    ndir.mkdir(exist_ok=True)
    conf = ndir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=1, dir=ndir, upstream=upstream, port=port))
    started = time.perf_counter()
    proc = spawn("nginx", [binary, "-c", str(conf), "-p", str(ndir)], workdir, cpus)
    startup = wait_first_200(proc, port, "/v1/chat/completions", started, 20)
    return Gateway("nginx", port, "/v1/chat/completions", proc, startup)


def litellm_command(option: str | None) -> list[str] | None:
    """``--litellm`` / ``$BENCH_LITELLM``: the ``litellm`` executable (or a venv holding it)."""
    candidate = option or os.environ.get("BENCH_LITELLM") or shutil.which("litellm")
    if not candidate:
        return None
    path = Path(candidate)
    if path.is_dir():
        path = path / "bin" / "litellm"
    return [str(path)] if os.access(path, os.X_OK) else None


def litellm_python(command: list[str]) -> str | None:
    python = Path(command[0]).parent / "python"
    return str(python) if python.exists() else None


def start_litellm(workdir: Path, cpus: set[int] | None, upstream: int, command: list[str]) -> Gateway:
    port = free_port()
    config = workdir / "litellm.yaml"
    base = f"http://127.0.0.1:{upstream}/v1"
    config.write_text(
        "model_list:\n"
        + "".join(
            f"  - model_name: {name}\n    litellm_params:\n      model: openai/{name}\n"
            f"      api_base: {base}\n      api_key: {API_KEY}\n"
            for name in ("bench-model", "bench-paced", *REAL_MODELS)
        )
    )
    env = {
        "LITELLM_MASTER_KEY": API_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start-up
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    started = time.perf_counter()
    argv = [*command, "--config", str(config), "--port", str(port), "--host", "127.0.0.1", "--num_workers", "1"]
    proc = spawn("litellm", argv, workdir, cpus, env)
    startup = wait_first_200(proc, port, "/v1/chat/completions", started, 180)
    return Gateway("litellm", port, "/v1/chat/completions", proc, startup)


@contextlib.contextmanager
def running(gateway: Gateway) -> Iterator[Gateway]:
    try:
        yield gateway
    finally:
        if gateway.proc is not None:
            gateway.proc.stop()
