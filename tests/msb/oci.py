"""Writes a minimal OCI image layout tar around one static busybox: the
`oci-layout` marker, `index.json`, and blobs for the config, one gzip layer
and the manifest. Deterministic (fixed mtimes), so the same busybox always
gives the same digests. Test-only: used by setup.sh to give msb an image
without a registry.

usage: oci.py <busybox> <out.tar>
"""

import gzip
import hashlib
import io
import json
import sys
import tarfile


def entry(name, *, kind=tarfile.REGTYPE, mode=0o644, size=0, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname, info.mtime = kind, mode, size, link, 0
    return info


def layer(busybox):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"]:
            tar.addfile(entry(name, kind=tarfile.DIRTYPE, mode=0o755))
        data = open(busybox, "rb").read()
        tar.addfile(entry("bin/busybox", mode=0o755, size=len(data)), io.BytesIO(data))
        for applet in ["cat", "echo", "ls", "sh", "sleep"]:
            tar.addfile(entry("bin/" + applet, kind=tarfile.SYMTYPE, link="busybox"))
    return raw.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main(busybox, out):
    raw = layer(busybox)
    gz = gzip.compress(raw, mtime=0)
    config = dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [digest(raw)]},
    })
    manifest = dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(gz), "size": len(gz)}],
    })
    index = dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    })
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data):
            tar.addfile(entry(name, size=len(data)), io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for blob in [config, gz, manifest]:
            add("blobs/sha256/" + digest(blob)[len("sha256:"):], blob)


if __name__ == "__main__":
    main(*sys.argv[1:])
