package reelytics.speed;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermission;
import java.util.EnumSet;
import java.util.Set;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * Hadoop's checksummed local file system ({@code file:}) without a process per file.
 *
 * <p>Without Hadoop's native library (the pip wheel of pyspark has none), {@code RawLocalFileSystem} sets the
 * permission of every file it creates by running {@code chmod}, and reads a path's link status by running
 * {@code readlink}. A streaming query writes several small files per micro-batch (the offset and commit logs, the
 * state store's changelog, each with its checksum file), so on a 1 s trigger that is a dozen or more processes
 * forked from the JVM every second, in the micro-batch's path. This file system does the same through Java's own
 * file API: the permissions with {@link Files#setPosixFilePermissions}, the link status with
 * {@link Files#isSymbolicLink} (a real link still goes to Hadoop's code).
 *
 * <p>Spark uses it for {@code file:} paths when {@code fs.file.impl} names it
 * ({@code spark.hadoop.fs.file.impl=reelytics.speed.LocalFileSystem}); other schemes are not touched.
 */
public class LocalFileSystem extends org.apache.hadoop.fs.LocalFileSystem {

    public LocalFileSystem() {
        super(new Raw());
    }

    /** The raw (unchecksummed) side. */
    public static class Raw extends RawLocalFileSystem {

        @Override
        public void setPermission(Path path, FsPermission permission) throws IOException {
            File file = pathToFile(path);
            try {
                Files.setPosixFilePermissions(file.toPath(), posix(permission.toShort()));
            } catch (UnsupportedOperationException notPosix) {
                super.setPermission(path, permission);
            }
        }

        @Override
        public FileStatus getFileLinkStatus(Path path) throws IOException {
            if (Files.isSymbolicLink(pathToFile(path).toPath())) {
                return super.getFileLinkStatus(path);
            }
            return getFileStatus(path);
        }
    }

    /** The nine permission bits of a POSIX mode. */
    static Set<PosixFilePermission> posix(int mode) {
        PosixFilePermission[] bits = {
            PosixFilePermission.OTHERS_EXECUTE, PosixFilePermission.OTHERS_WRITE, PosixFilePermission.OTHERS_READ,
            PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.GROUP_WRITE, PosixFilePermission.GROUP_READ,
            PosixFilePermission.OWNER_EXECUTE, PosixFilePermission.OWNER_WRITE, PosixFilePermission.OWNER_READ,
        };
        Set<PosixFilePermission> set = EnumSet.noneOf(PosixFilePermission.class);
        for (int i = 0; i < bits.length; i++) {
            if ((mode & (1 << i)) != 0) {
                set.add(bits[i]);
            }
        }
        return set;
    }
}
