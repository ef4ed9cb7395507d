"""One real OpenSSH server on loopback: a sandbox "machine".

Each host has its own directory holding a host key, the authorized public
keys, an sshd_config, a log and a clean home directory (``HOME`` is set with
sshd's ``SetEnv``, so the user's own ~/.bashrc is never sourced). As root the
server runs in a private mount namespace, so mounts made on one sandbox
instance (a data volume at /mnt/data) are invisible to the others, like
separate machines, and end with it (a stopped machine has no mounts). There
the host's ``cloud/`` directory is bind-mounted at ``/var/lib/cloud``: the
instance's own cloud-init directory, whose ``scripts/per-boot/`` the daemon
runs on every start after a stop, as cloud-init does on an Ubuntu AMI.
"""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import SandboxError


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sshd_binary() -> str:
    for candidate in (shutil.which("sshd"), "/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SandboxError(
        "The sandbox needs OpenSSH's server (sshd), which is not installed.",
        hint="Install it (Debian/Ubuntu: apt-get install -y openssh-server) and try again.",
    )


@dataclass
class SshdHost:
    """An sshd bound to 127.0.0.1:port serving a per-host home directory."""

    root: Path
    port: int = 0
    authorized_keys: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    private_mounts: bool = True
    pid: int | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def user(self) -> str:
        """sshd not running as root can only log in its own user."""
        return getpass.getuser()

    @property
    def bin_dir(self) -> Path:
        """First on the machine's PATH: ``shutdown``, ``poweroff`` and ``halt`` that ask the sandbox to power it off."""
        return self.root / "bin"

    @property
    def cloud_dir(self) -> Path:
        """The instance's /var/lib/cloud (bind-mounted there inside its namespace)."""
        return self.root / "cloud"

    @property
    def log_file(self) -> Path:
        return self.root / "sshd.log"

    @property
    def host_key_file(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    def host_public_key(self) -> str:
        return (self.root / "ssh_host_ed25519_key.pub").read_text().strip()

    def write_config(self) -> Path:
        """Create the host's files (idempotent) and return its sshd_config."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        if not self.host_key_file.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ec2kit-sandbox", "-f", str(self.host_key_file)],
                check=True,
                stdin=subprocess.DEVNULL,
            )
        (self.root / "authorized_keys").write_text("".join(k.strip() + "\n" for k in self.authorized_keys))
        if not self.port:
            self.port = free_port()
        self.write_shims()
        env = {
            "HOME": str(self.home),
            "EC2KIT_SANDBOX_HOST": str(self.root),
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            **self.env,
        }
        if not self.namespaced():  # no bind mount: say where this machine's /var/lib/cloud is
            env["EC2KIT_CLOUD_DIR"] = str(self.cloud_dir)
        set_env = " ".join(f'"{k}={v}"' for k, v in env.items())
        config = self.root / "sshd_config"
        config.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key_file}\n"
            # The machine's own keys, then the login user's (~/.ssh/authorized_keys, as on AWS).
            f"AuthorizedKeysFile {self.root / 'authorized_keys'} {self.home / '.ssh' / 'authorized_keys'}\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "MaxSessions 50\n"
            "MaxStartups 100:30:200\n"
            "AllowTcpForwarding yes\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"SetEnv {set_env}\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
        )
        return config

    def write_shims(self) -> None:
        """``shutdown -h now`` (and ``poweroff``, ``halt``) on this machine run ``$EC2KIT_POWEROFF``: the sandbox
        stops or terminates the instance by its InstanceInitiatedShutdownBehavior, never the real machine."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        shim = (
            "#!/bin/sh\n# ec2kit sandbox: this machine's power-off goes to the sandbox (stop or terminate, as EC2 would)\n"
            'case " $* " in *" -r "*|*" --reboot "*|*" -c "*) echo "$0: only power-off is imitated" >&2; exit 1 ;; esac\n'
            '[ -n "${EC2KIT_POWEROFF:-}" ] || { echo "$0: not a sandbox machine" >&2; exit 1; }\n'
            'exec sh -c "$EC2KIT_POWEROFF" >/dev/null\n'
        )
        for name in ("shutdown", "poweroff", "halt"):
            path = self.bin_dir / name
            if not path.exists() or path.read_text() != shim:
                path.write_text(shim)
                path.chmod(0o755)

    def start(self, timeout: float = 5.0) -> None:
        """Start sshd in the foreground of a child process and wait until it listens."""
        config = self.write_config()
        Path("/run/sshd").mkdir(parents=True, exist_ok=True) if os.geteuid() == 0 else None
        argv = [sshd_binary(), "-D", "-f", str(config), "-E", str(self.log_file)]
        (self.cloud_dir / "scripts" / "per-boot").mkdir(parents=True, exist_ok=True)
        if self.namespaced():
            # Own mount and PID namespaces: mounts stay on this "machine", and when
            # sshd (PID 1 there) exits the kernel ends everything it started —
            # sessions, tmux servers, open connections, mounts — as a power-off would.
            # /var/lib/cloud is the machine's own directory (mounted over the real one there only).
            Path("/var/lib/cloud").mkdir(parents=True, exist_ok=True)
            inner = f"mount --bind {shlex.quote(str(self.cloud_dir))} /var/lib/cloud && exec {shlex.join(argv)}"
            argv = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", "-c", inner]
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        self.pid, self._proc = proc.pid, proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = (proc.stderr.read() or b"").decode(errors="replace") if proc.stderr else ""
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                raise SandboxError(f"sshd for {self.root.name} exited at start: {(err + log).strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise SandboxError(f"sshd for {self.root.name} did not listen on port {self.port} within {timeout:.0f}s.")

    def namespaced(self) -> bool:
        """True when the server runs in its own mount and PID namespaces (root, with unshare)."""
        return self.private_mounts and os.geteuid() == 0 and shutil.which("unshare") is not None

    def running(self) -> bool:
        """True while the sshd process started by :meth:`start` is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Stop the server and every session it started (its process group)."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc, self._proc = self._proc, None
        for _ in range(100):
            if proc is not None:
                if proc.poll() is not None:
                    break
            else:
                try:
                    pid, _status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
            time.sleep(0.02)
        else:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc is not None:
                proc.wait(timeout=2)
        if proc is not None and proc.stderr:
            proc.stderr.close()
        self.pid = None
        self.kill_leftovers()

    def machine_env(self) -> dict[str, str]:
        """What a process the machine itself starts sees (cron's small environment plus the instance's variables)."""
        return {
            "PATH": f"{self.bin_dir}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "SHELL": "/bin/sh",
            "HOME": str(self.home),
            "EC2KIT_SANDBOX_HOST": str(self.root),  # so a stop ends what the machine started
            **self.env,
        }

    def _nsenter(self) -> list[str]:
        """The prefix that runs a command inside the host's own namespaces ([] without them)."""
        inner = self._namespace_pid()
        if inner is not None and shutil.which("nsenter"):
            return ["nsenter", "-t", str(inner), "-m", "-p", "--"]
        return []

    def spawn(self, argv: list[str], *, env: dict[str, str] | None = None, log_name: str = "boot.log") -> subprocess.Popen:
        """Start ``argv`` as the machine would (in the host's namespaces, with :meth:`machine_env`), output to ``log_name``."""
        with open(self.root / log_name, "ab") as log:
            return subprocess.Popen(
                [*self._nsenter(), *argv],
                env={**self.machine_env(), **(env or {})},
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def per_boot_scripts(self) -> list[Path]:
        """What cloud-init's scripts-per-boot module would run: the executable files of
        /var/lib/cloud/scripts/per-boot, in name order (others are skipped, as run-parts does)."""
        folder = self.cloud_dir / "scripts" / "per-boot"
        if not folder.is_dir():
            return []
        return [p for p in sorted(folder.iterdir()) if p.is_file() and os.access(p, os.X_OK)]

    def run_boot_scripts(self, timeout: float = 120.0) -> list[str]:
        """Run the machine's per-boot scripts as its boot would: each in turn (the next once the previous
        ended), executed directly (their #! line), as root in the host's namespaces, with a service's
        small environment plus the instance's own variables; output appended to ``boot.log``
        (cloud-init's /var/log/cloud-init-output.log). Returns their names."""
        scripts = self.per_boot_scripts()
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "EC2KIT_SANDBOX_HOST": str(self.root),  # so a stop ends what the scripts started
            **self.env,
        }
        if not self.namespaced():
            env["EC2KIT_CLOUD_DIR"] = str(self.cloud_dir)
        prefix = self._nsenter()
        with open(self.root / "boot.log", "ab") as log:
            for script in scripts:
                log.write(f"--- {script.name}\n".encode())
                log.flush()
                try:
                    done = subprocess.run(
                        [*prefix, str(script)],
                        env=env,
                        cwd="/",
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        timeout=timeout,
                    )
                    log.write(f"--- {script.name}: exit {done.returncode}\n".encode())
                except (OSError, subprocess.TimeoutExpired) as err:  # one failing script never stops the others
                    log.write(f"--- {script.name}: {err}\n".encode())
        return [p.name for p in scripts]

    def _namespace_pid(self) -> int | None:
        """The sshd inside the host's own namespaces (the child of ``unshare``), if it has them."""
        if self.pid is None or not (self.private_mounts and os.geteuid() == 0):
            return None
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def kill_leftovers(self) -> int:
        """Kill what this host's sessions left running (tmux servers, nohup'd jobs…).

        Daemons leave sshd's process group, so they are found by the marker
        every session's environment carries; a stopped machine runs nothing.
        """
        marker = f"EC2KIT_SANDBOX_HOST={self.root}".encode() + b"\0"
        killed = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker not in f.read() + b"\0":
                        continue
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except (OSError, ValueError):
                continue
        return killed

    def connections(self) -> int:
        """How many SSH connections sshd has authenticated (its 'Accepted publickey' log lines)."""
        if not self.log_file.exists():
            return 0
        return sum(1 for line in self.log_file.read_text(errors="replace").splitlines() if line.startswith("Accepted publickey"))

    def exec_channels(self) -> int:
        """How many SSH sessions sshd has opened (counts 'session' channel opens in its log)."""
        if not self.log_file.exists():
            return 0
        return sum(1 for line in self.log_file.read_text(errors="replace").splitlines() if "Starting session" in line)
