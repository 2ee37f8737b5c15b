"""Reelytics' own JVM classes (``speed_layer/jvm/src``): compiled against the pyspark wheel's jars into a jar that
Spark loads with the connectors.

The jar is named by a digest of the sources and the pyspark version, under ``<cache>/jars/reelytics``; a missing
jar is built on first use (a few seconds of ``javac``), so a change to the sources or an upgrade of pyspark
builds a new one. ``infra/install.sh`` builds it too (``python -m infra.jvm``), so a fresh machine does not wait
for it at the first Spark session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from infra.process import ServiceError
from warehouse_models.settings import Settings

logger = logging.getLogger(__name__)

SOURCES = Path(__file__).resolve().parent.parent / "speed_layer" / "jvm" / "src"
"""The Java sources (package ``reelytics.speed``)."""


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def _spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


RESOURCES = "reelytics/speed"
"""Where the jar keeps the data its classes read (``envelope.json``: the envelope's rules)."""


def _resources() -> dict[str, bytes]:
    """The jar's data files, written from their one definition: the envelope's rules for ``EnvelopeViolation``."""
    from warehouse_models.events import envelope_rules

    return {f"{RESOURCES}/envelope.json": json.dumps(envelope_rules(), sort_keys=True, indent=1).encode()}


def jar_name() -> str:
    """``reelytics-jvm-<digest>.jar``: the digest of every source file, every data file and the pyspark version."""
    import pyspark

    digest = hashlib.sha256(pyspark.__version__.encode())
    for source in _sources():
        digest.update(source.relative_to(SOURCES).as_posix().encode())
        digest.update(source.read_bytes())
    for name, data in sorted(_resources().items()):
        digest.update(name.encode())
        digest.update(data)
    return f"reelytics-jvm-{digest.hexdigest()[:16]}.jar"


def build_jar(settings: Settings) -> Path:
    """The jar of the current sources, compiled now if the cache does not hold it."""
    dest = settings.jars_dir / "reelytics"
    jar = dest / jar_name()
    if jar.exists():
        return jar
    javac = shutil.which("javac")
    if javac is None:
        raise ServiceError("compiling Reelytics' Spark classes needs a JDK's javac (Java 17+): "
                           "apt-get install openjdk-17-jdk-headless")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reelytics-jvm-") as work:
        classes = Path(work) / "classes"
        command = [javac, "-nowarn", "-encoding", "UTF-8", "--release", "17", "-d", str(classes),
                   "-cp", str(_spark_jars() / "*"), *(str(s) for s in _sources())]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ServiceError(f"javac failed on {SOURCES}:\n{done.stderr.strip()}")
        partial = Path(work) / jar.name
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: reelytics\n\n")
            for item in sorted(classes.rglob("*.class")):
                archive.write(item, item.relative_to(classes).as_posix())
            for name, data in sorted(_resources().items()):
                archive.writestr(name, data)
        # Another process may be building the same jar: the rename is atomic, the last one wins with equal bytes.
        shutil.copy(partial, dest / f".{jar.name}.{os.getpid()}")
        os.replace(dest / f".{jar.name}.{os.getpid()}", jar)
    logger.info("compiled %d Java sources into %s", len(_sources()), jar)
    return jar


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build_jar(Settings()))
