"""Keeps the sandbox's machines in step with moto: one sshd per running instance.

Each pass makes one describe call per resource kind and converges:
images (save the source instance's home), instances (start/stop/remove sshd
hosts), snapshots (copy volume files), volumes (loop devices + by-id links).
Runs inside the sandbox daemon; boto3 is the daemon's own client to moto.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...tags import SOURCE_INSTANCE_TAG as SOURCE_TAG
from . import volumes as vol
from .sshd import SshdHost, free_port

log = logging.getLogger("ec2kit.sandbox")

GONE = ("terminated", "shutting-down")
DOWN = ("stopped", "stopping")


@dataclass
class Attachment:
    """A volume on a loop device for one instance."""

    instance_id: str
    device: str
    attached_at: float


def port_is_free(port: int) -> bool:
    """True when 127.0.0.1:port can be bound now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a home directory exactly (modes, links, sparse files)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["cp", "-a", "--sparse=always", str(src), str(dest)], check=True, capture_output=True)


class Reconciler:
    """Converges sshd hosts, saved image homes, volume files and loop devices with moto."""

    def __init__(self, ec2: Any, root: Path, control_url: str, *, volumes: bool, changes: Any = None) -> None:
        self.ec2, self.root, self.control_url, self.volumes = ec2, root, control_url, volumes
        self.changes = changes  # a motoserver.ChangeCounter, or None to re-describe on every tick
        self.seen_generation = -1
        self.unsettled = True  # something in a transitional state: look again next tick
        self.last_pass = 0.0
        self.passes = 0  # completed passes, in /status: a test waits for the next one instead of sleeping
        self.closed = False  # set by shutdown(): no host starts after it
        self.lock = threading.RLock()
        self.hosts: dict[str, SshdHost] = {}
        self.instances: dict[str, dict[str, Any]] = {}  # last describe, by id
        self.images_seen: set[str] = set()
        self.snapshots_seen: set[str] = set()
        self.attached: dict[str, Attachment] = {}
        self.started_at: dict[str, float] = {}  # instance id -> seconds from first seen running to sshd listening
        self.first_running: dict[str, float] = {}
        self.stopped: set[str] = set()  # instances whose host was stopped: their next start is a boot (hooks run)
        self.booting: set[str] = set()  # started again this pass: their per-boot scripts run once volumes are attached
        for sub in ("hosts", "images", "volumes", "snapshots"):
            (root / sub).mkdir(parents=True, exist_ok=True)

    # paths ------------------------------------------------------------------
    def host_dir(self, instance_id: str) -> Path:
        return self.root / "hosts" / instance_id

    def image_home(self, image_id: str) -> Path:
        return self.root / "images" / image_id / "home"

    def volume_file(self, volume_id: str) -> Path:
        return self.root / "volumes" / f"{volume_id}.img"

    def snapshot_file(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / f"{snapshot_id}.img"

    def every(self, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every item of a describe call, all pages: moto, like EC2, pages DescribeInstances at 100
        reservations, and a pass that read one page would miss (and remove) the hosts beyond it."""
        items: list[dict[str, Any]] = []
        for page in self.ec2.get_paginator(operation).paginate(**params):
            items.extend(page.get(key, []))
        return items

    # the loop ---------------------------------------------------------------
    def run(self, stop: threading.Event, interval: float = 0.2, full_every: float = 5.0) -> None:
        """Converge after every change to moto (checked each ``interval`` s) and every ``full_every`` s.

        Errors are logged, never fatal: the next tick tries again.
        """
        while not stop.is_set():
            if self.changes is not None:
                self.changes.event.wait(interval)
                self.changes.event.clear()
            else:
                stop.wait(interval)
            if stop.is_set():
                break
            try:
                with self.lock:
                    dead = any(not h.running() for h in self.hosts.values())
                    if self.dirty() or dead or time.monotonic() - self.last_pass > full_every:
                        self.reconcile()
            except Exception:
                log.exception("reconcile pass failed (will retry)")
                self.unsettled = True

    def dirty(self) -> bool:
        """True when moto may have changed since the last pass."""
        return self.changes is None or self.unsettled or self.changes.generation != self.seen_generation

    def reconcile_if_changed(self) -> None:
        """A pass only if moto changed since the last one (cheap for frequent callers)."""
        with self.lock:
            if self.dirty():
                self.reconcile()

    def reconcile(self) -> None:
        """One pass over images, instances, snapshots and volumes."""
        with self.lock:
            generation = self.changes.generation if self.changes is not None else 0
            self.unsettled = True  # until the pass completes
            self.reconcile_images()
            self.reconcile_instances()
            if self.volumes:
                self.reconcile_snapshots()
                self.reconcile_volumes()
            self.run_boot_scripts()
            self.seen_generation = generation
            self.last_pass = time.monotonic()
            self.passes += 1
            self.unsettled = any(i["State"]["Name"] in ("pending", "stopping", "shutting-down") for i in self.instances.values())

    # images -----------------------------------------------------------------
    def reconcile_images(self) -> None:
        images = self.every("describe_images", "Images", Owners=["self"])
        present = set()
        for image in images:
            image_id = image["ImageId"]
            present.add(image_id)
            if image_id in self.images_seen:
                continue
            self.images_seen.add(image_id)
            tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
            source = tags.get(SOURCE_TAG) or image.get("SourceInstanceId")
            home = self.host_dir(source) / "home" if source else None
            if home is not None and home.is_dir():
                copy_tree(home, self.image_home(image_id))
                log.info("image %s: saved the home of %s", image_id, source)
        for image_id in self.images_seen - present:  # deregistered
            self.images_seen.discard(image_id)
            shutil.rmtree(self.image_home(image_id).parent, ignore_errors=True)

    # instances --------------------------------------------------------------
    def reconcile_instances(self) -> None:
        reservations = self.every("describe_instances", "Reservations")
        current = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
        self.instances = current
        for instance_id, instance in current.items():
            state = instance["State"]["Name"]
            try:
                if state == "running":
                    self.ensure_host(instance)
                elif state in DOWN:
                    self.stop_host(instance_id)
                elif state in GONE:
                    self.remove_host(instance_id)
            except Exception:  # one broken host must not stall the others; retried on the next full pass
                log.exception("%s: could not converge to %s", instance_id, state)
        for instance_id in [i for i in self.hosts if i not in current] + [
            p.name for p in (self.root / "hosts").iterdir() if p.name not in current
        ]:
            self.remove_host(instance_id)  # vanished (moto reset)

    def authorized_keys(self, key_name: str | None) -> list[str]:
        if not key_name:
            return []
        try:  # not cached: a key pair may be deleted and re-imported under the same name
            pairs = self.ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
        except Exception as err:  # the key pair was deleted: nobody can log in, as on AWS
            log.warning("key pair %s: %s", key_name, err)
            return []
        key = pairs[0].get("PublicKey", "") if pairs else ""
        return [key] if key else []

    def ensure_host(self, instance: dict[str, Any]) -> None:
        """Start the instance's sshd if it is not running (new home, or the kept one)."""
        instance_id = instance["InstanceId"]
        host = self.hosts.get(instance_id)
        if self.closed or (host is not None and host.running()):
            return
        self.first_running.setdefault(instance_id, time.monotonic())
        root = self.host_dir(instance_id)
        if not root.exists():
            saved = self.image_home(instance.get("ImageId", ""))
            if instance.get("ImageId") and saved.is_dir():
                copy_tree(saved, root / "home")
                log.info("%s: home copied from image %s", instance_id, instance["ImageId"])
        port_file = root / "port"
        port = int(port_file.read_text()) if port_file.exists() else 0
        if port and (instance_id in self.stopped or not port_is_free(port)):
            port = 0  # started again after a stop: a new address, as its public IP is new on AWS
        host = SshdHost(
            root,
            port=port or free_port(),
            authorized_keys=self.authorized_keys(instance.get("KeyName")),
            env={
                "EC2KIT_IMDS": f"{self.control_url}/i/{instance_id}",
                "EC2KIT_POWEROFF": f"curl -fsS -X POST {self.control_url}/poweroff/{instance_id}",
                "EC2KIT_INSTANCE_ID": instance_id,
                "EC2KIT_ONBOOT": "sandbox",  # no systemd or cron here: the sandbox runs the idle watcher from its loop
                "EC2KIT_AUTOSTOP_DIR": str(root / "autostop"),  # the idle watcher's home (/var/lib/ec2kit/autostop on AWS)
            },
        )
        host.start()
        port_file.write_text(str(host.port))
        self.hosts[instance_id] = host
        if instance_id in self.stopped:  # started again after a stop: a boot, so its per-boot scripts run
            self.stopped.discard(instance_id)
            self.booting.add(instance_id)  # once its volumes are attached again (end of this pass)
        self.started_at[instance_id] = time.monotonic() - self.first_running.pop(instance_id)
        log.info("%s: sshd on port %d (pid %s)", instance_id, host.port, host.pid)

    def run_boot_scripts(self) -> None:
        """Boot the instances started again this pass: their volumes are attached (EBS volumes are
        there when a real machine boots), so run their per-boot scripts now, as cloud-init would, in a
        thread of their own (a script may wait for a device; the reconciler must not)."""
        from ..moto.account import ACCOUNT

        for instance_id in sorted(self.booting):
            self.booting.discard(instance_id)
            host = self.hosts.get(instance_id)
            if host is None:
                continue
            if not ACCOUNT.boot_scripts:
                log.info("%s: booted without running its per-boot scripts (boot_scripts is off)", instance_id)
                continue

            def boot(host: SshdHost = host, instance_id: str = instance_id) -> None:
                ran = host.run_boot_scripts()
                if ran:
                    log.info("%s: per-boot scripts run: %s", instance_id, ", ".join(ran))

            threading.Thread(target=boot, name=f"boot-{instance_id}", daemon=True).start()

    def stop_host(self, instance_id: str) -> None:
        """Stop the instance's sshd and its sessions; keep its home."""
        host = self.hosts.pop(instance_id, None)
        self.first_running.pop(instance_id, None)
        if host is not None:
            self.stopped.add(instance_id)
            host.stop()
            log.info("%s: sshd stopped", instance_id)
        self.detach_instance_volumes(instance_id)

    def remove_host(self, instance_id: str) -> None:
        """Stop the instance's sshd and delete its directory."""
        self.stop_host(instance_id)
        root = self.host_dir(instance_id)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
            log.info("%s: host removed", instance_id)

    def address(self, instance_id: str) -> dict[str, Any] | None:
        """Where to reach the instance's sshd, or None if it is not running."""
        host = self.hosts.get(instance_id)
        if host is None or not host.running():
            return None
        return {"host": "127.0.0.1", "port": host.port, "user": host.user, "host_key": host.host_public_key()}

    # snapshots and volumes --------------------------------------------------
    def reconcile_snapshots(self) -> None:
        snapshots = self.every("describe_snapshots", "Snapshots", OwnerIds=["self"])
        present = set()
        for snap in snapshots:
            snap_id = snap["SnapshotId"]
            present.add(snap_id)
            if snap_id in self.snapshots_seen:
                continue
            self.snapshots_seen.add(snap_id)
            source = self.volume_file(snap.get("VolumeId", ""))
            if snap.get("VolumeId") and source.exists() and not self.snapshot_file(snap_id).exists():
                try:
                    vol.copy_to_snapshot(source, self.snapshot_file(snap_id))
                    log.info("snapshot %s: copied from %s", snap_id, snap["VolumeId"])
                except Exception:
                    log.exception("snapshot %s: could not copy %s", snap_id, snap["VolumeId"])
        for path in (self.root / "snapshots").glob("*.img"):
            if path.stem not in present:
                path.unlink(missing_ok=True)
        self.snapshots_seen &= present

    def reconcile_volumes(self) -> None:
        volumes = self.every("describe_volumes", "Volumes")
        wanted: dict[str, dict[str, Any]] = {}
        for volume in volumes:
            for att in volume.get("Attachments", []):
                instance = self.instances.get(att.get("InstanceId", ""), {})
                if att.get("Device") == instance.get("RootDeviceName", "/dev/sda1"):
                    continue  # the root disk is the host's home directory, not a loop device
                if att.get("State") in ("attached", "attaching") and att.get("InstanceId") in self.hosts:
                    wanted[volume["VolumeId"]] = {"volume": volume, "instance_id": att["InstanceId"]}
        for volume_id, att in list(self.attached.items()):
            if volume_id not in wanted or wanted[volume_id]["instance_id"] != att.instance_id:
                self.detach_volume(volume_id)
        for volume_id, want in wanted.items():
            if volume_id not in self.attached:
                try:
                    self.attach_volume(want["volume"], want["instance_id"])
                except Exception:  # e.g. no free loop device: the other volumes still attach
                    log.exception("volume %s: could not attach to %s", volume_id, want["instance_id"])
        present = {v["VolumeId"] for v in volumes}
        for path in (self.root / "volumes").glob("*.img"):
            if path.stem not in present and path.stem not in self.attached:
                path.unlink(missing_ok=True)
                log.info("volume %s: deleted, backing file removed", path.stem)

    def attach_volume(self, volume: dict[str, Any], instance_id: str) -> None:
        volume_id = volume["VolumeId"]
        image = self.volume_file(volume_id)
        snap_id = volume.get("SnapshotId") or ""
        source = self.snapshot_file(snap_id) if snap_id else None
        if vol.ensure_backing_file(image, int(volume.get("Size") or 1), source):
            log.info("volume %s: backing file created%s", volume_id, f" from {snap_id}" if source and source.exists() else "")
        device = vol.attach(volume_id, image)
        self.attached[volume_id] = Attachment(instance_id, device, time.time())
        log.info("volume %s: attached to %s as %s", volume_id, instance_id, device)

    def detach_volume(self, volume_id: str) -> None:
        att = self.attached.pop(volume_id, None)
        vol.detach(volume_id, att.device if att else None)
        log.info("volume %s: detached", volume_id)

    def detach_instance_volumes(self, instance_id: str) -> None:
        for volume_id, att in list(self.attached.items()):
            if att.instance_id == instance_id:
                self.detach_volume(volume_id)

    # status and shutdown ----------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Hosts and attached volumes, for ``GET /status``."""
        with self.lock:
            hosts = []
            for instance_id, instance in self.instances.items():
                host = self.hosts.get(instance_id)
                hosts.append(
                    {
                        "instance_id": instance_id,
                        "state": instance["State"]["Name"],
                        "port": host.port if host else None,
                        "pid": host.pid if host else None,
                        "user": host.user if host else None,
                        "home": str(host.home) if host else None,
                        "sshd_start_seconds": round(self.started_at.get(instance_id, 0.0), 3) if host else None,
                    }
                )
            attached = [
                {"volume_id": v, "instance_id": a.instance_id, "device": a.device, "link": str(vol.by_id_path(v))}
                for v, a in self.attached.items()
            ]
        return {"hosts": hosts, "attached_volumes": attached, "passes": self.passes}

    def shutdown(self) -> None:
        """Stop every sshd host and free every loop device."""
        with self.lock:
            self.closed = True
            for instance_id in list(self.hosts):
                self.stop_host(instance_id)
            for volume_id in list(self.attached):
                self.detach_volume(volume_id)

    def forget(self) -> None:
        """Drop everything (after a moto reset): hosts, saved images, volume and snapshot files."""
        with self.lock:
            self.shutdown()
            self.closed = False
            self.instances.clear()
            self.images_seen.clear()
            self.snapshots_seen.clear()
            for sub in ("hosts", "images", "volumes", "snapshots"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
                (self.root / sub).mkdir(parents=True, exist_ok=True)
