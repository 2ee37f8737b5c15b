"""The local file system Spark sessions use on a local master: Hadoop's, without a process per file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from infra.spark import LOCAL_FILE_SYSTEM


def _newest_pid() -> int:
    """The pid the machine handed out last: Linux hands them out in order, so a difference counts new processes."""
    return int(Path("/proc/loadavg").read_text().split()[-1])


def test_files_are_created_with_their_permission_and_without_a_process_each(spark, tmp_path: Path) -> None:
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf)
    assert fs.getClass().getName() == LOCAL_FILE_SYSTEM
    assert fs.getRaw().getClass().getName() == f"{LOCAL_FILE_SYSTEM}$Raw"

    mode = jvm.org.apache.hadoop.fs.permission.FsPermission(jvm.java.lang.Short.parseShort("416"))  # 0o640
    before = _newest_pid()
    for n in range(40):
        path = jvm.org.apache.hadoop.fs.Path(f"file://{tmp_path}/f{n}")
        out = fs.create(path, mode, False, 4096, 1, 1 << 20, None)
        out.write(b"x")
        out.close()
        assert fs.getFileLinkStatus(path).getLen() == 1
    forked = _newest_pid() - before
    # Hadoop's own file system (no native library) runs chmod and readlink for each file and its checksum: 160
    # processes for these 40 files.
    assert forked < 20, forked
    assert stat.S_IMODE(os.stat(tmp_path / "f7").st_mode) == 0o640
    assert (tmp_path / ".f7.crc").exists()


def test_a_symbolic_link_keeps_its_target(spark, tmp_path: Path) -> None:
    jvm = spark.sparkContext._jvm
    (tmp_path / "target").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI("file:///"), conf)
    status = fs.getFileLinkStatus(jvm.org.apache.hadoop.fs.Path(str(tmp_path / "link")))
    assert status.isSymlink()
    assert status.getSymlink().toUri().getPath() == str(tmp_path / "target")
