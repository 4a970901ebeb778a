//! A VFS for the writer's connection that writes each commit's WAL frames with a
//! few system calls instead of two per page.
//!
//! SQLite appends a WAL frame as two `pwrite`s, its 24-byte header and then the
//! page, so a commit of 150 pages made 300 system calls before its fsync (strace of
//! the writer thread; README, "One write per commit"). This VFS is the platform's
//! default one with one difference: a WAL file's writes at consecutive offsets are
//! gathered in memory and written together (in pieces of [`CHUNK`]) when SQLite
//! syncs the WAL (every commit: the writer runs `synchronous=FULL`), reads a
//! gathered range, changes or asks the file's size, or closes it, and when a write
//! lands elsewhere. Every other file (the
//! database itself and its shared-memory index) is the default VFS's own object,
//! opened in place, so its locks and memory map are exactly the default's.
//!
//! Nothing changes for durability or for other connections: a commit returns only
//! after its sync, which writes what was gathered first; and a reader sees a frame
//! only once the commit that synced it has published it in the WAL index. A failed
//! write is reported to SQLite by the call that made it, which rolls back as it
//! would after a failed `pwrite`.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The VFS's registered name (see [`register`]).
pub const NAME: &str = "handoff-walbuf";

/// Gathered bytes beyond this are written out first (a commit's frames are a few
/// hundred KB; a transaction that spills more than this writes in steps of it).
const CAP: usize = 8 << 20;

/// The most the default VFS writes in one call: the unix VFS masks a write's length
/// with 0x1ffff (and reports a longer one as a full disk), so what is gathered goes
/// out in pieces of 124 KiB (31 pages), a handful per commit.
const CHUNK: usize = 0x1f000;

/// Writes gathered for one WAL file: `data` belongs at offset `base`.
#[derive(Default, Debug)]
pub struct Gather {
    base: i64,
    data: Vec<u8>,
}

impl Gather {
    /// Take `bytes` for offset `off` when they extend or overwrite the gathered
    /// range and it stays within [`CAP`]; false when they do not (the caller writes
    /// out what is gathered and asks again, or writes them itself).
    pub fn absorb(&mut self, off: i64, bytes: &[u8]) -> bool {
        if self.data.is_empty() {
            self.base = off;
        }
        let end = self.base + self.data.len() as i64;
        if off < self.base || off > end {
            return false;
        }
        let at = (off - self.base) as usize;
        let until = at + bytes.len();
        if until > CAP {
            return false;
        }
        if until > self.data.len() {
            self.data.resize(until, 0);
        }
        self.data[at..until].copy_from_slice(bytes);
        true
    }

    /// Whether `len` bytes at `off` touch what is gathered.
    pub fn overlaps(&self, off: i64, len: i64) -> bool {
        !self.data.is_empty() && off < self.base + self.data.len() as i64 && self.base < off + len
    }

    /// What is gathered, as (offset, bytes); empty when nothing is.
    pub fn pending(&self) -> (i64, &[u8]) {
        (self.base, &self.data)
    }

    /// Forget what was gathered (it was written, or the write failed and SQLite
    /// will roll back).
    pub fn clear(&mut self) {
        self.data.clear();
    }
}

/// The WAL file object SQLite holds: our methods, then the default VFS's own file
/// object (in the same allocation, after this header).
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    gather: *mut Gather,
}

const HEADER: usize = std::mem::size_of::<WalFile>();

/// The default VFS (an address: raw pointers are not `Sync`).
static ROOT: OnceLock<usize> = OnceLock::new();

/// Register the VFS (once per process; later calls return the first outcome).
pub fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: sqlite3_vfs_find initialises SQLite and returns the default VFS,
        // which lives for the process; the copy made here is leaked, so it too
        // lives for the process, as a registered VFS must.
        unsafe {
            let root = ffi::sqlite3_vfs_find(std::ptr::null());
            if root.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            let mut vfs = *root;
            vfs.szOsFile = (*root).szOsFile + HEADER as c_int;
            vfs.zName = c"handoff-walbuf".as_ptr();
            vfs.pNext = std::ptr::null_mut();
            vfs.xOpen = Some(open);
            let _ = ROOT.set(root as usize);
            let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0);
            if rc != ffi::SQLITE_OK {
                return Err(format!("cannot register the SQLite VFS {NAME}: code {rc}"));
            }
            Ok(())
        }
    })
    .clone()
}

fn root() -> *mut ffi::sqlite3_vfs {
    ROOT.get()
        .map_or(std::ptr::null_mut(), |&p| p as *mut ffi::sqlite3_vfs)
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let root = root();
    let Some(root_open) = root.as_ref().and_then(|r| r.xOpen) else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: the default VFS's own object, in place.
        return root_open(root, name, file, flags, out_flags);
    }
    let wal = file.cast::<WalFile>();
    let inner = file.cast::<u8>().add(HEADER).cast::<ffi::sqlite3_file>();
    (*wal).base.pMethods = std::ptr::null();
    let rc = root_open(root, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    (*wal).inner = inner;
    (*wal).gather = Box::into_raw(Box::default());
    (*wal).base.pMethods = &WAL_METHODS;
    rc
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

/// The default VFS's file object inside ours, and its methods.
unsafe fn inner<'a>(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods) {
    let inner = (*file.cast::<WalFile>()).inner;
    (inner, &*(*inner).pMethods)
}

unsafe fn gather<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Gather {
    &mut *(*file.cast::<WalFile>()).gather
}

#[cfg(test)]
thread_local! {
    /// Writes SQLite asked for and writes passed on, on this thread (tests).
    pub static CALLS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

fn count(asked: u64, passed: u64) {
    #[cfg(test)]
    CALLS.with(|c| {
        let (a, p) = c.get();
        c.set((a + asked, p + passed));
    });
    let _ = (asked, passed);
}

/// Write out what is gathered, with one call of the default VFS's `xWrite` per
/// [`CHUNK`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let g = gather(file);
    let (off, bytes) = g.pending();
    if bytes.is_empty() {
        return ffi::SQLITE_OK;
    }
    let (inner, m) = inner(file);
    let mut rc = ffi::SQLITE_OK;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        count(0, 1);
        rc = match m.xWrite {
            Some(w) => w(
                inner,
                chunk.as_ptr().cast(),
                chunk.len() as c_int,
                off + (i * CHUNK) as i64,
            ),
            None => ffi::SQLITE_IOERR_WRITE,
        };
        if rc != ffi::SQLITE_OK {
            break;
        }
    }
    g.clear();
    rc
}

macro_rules! flush_first {
    ($file:expr) => {
        let rc = flush($file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    };
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let (inner, m) = inner(file);
    let closed = m.xClose.map_or(ffi::SQLITE_OK, |c| c(inner));
    let wal = file.cast::<WalFile>();
    drop(Box::from_raw((*wal).gather));
    (*wal).gather = std::ptr::null_mut();
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    if gather(file).overlaps(off, i64::from(amt)) {
        flush_first!(file);
    }
    let (inner, m) = inner(file);
    m.xRead
        .map_or(ffi::SQLITE_IOERR_READ, |r| r(inner, buf, amt, off))
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let bytes = std::slice::from_raw_parts(buf.cast::<u8>(), amt.max(0) as usize);
    count(1, 0);
    if gather(file).absorb(off, bytes) {
        return ffi::SQLITE_OK;
    }
    flush_first!(file);
    if gather(file).absorb(off, bytes) {
        return ffi::SQLITE_OK;
    }
    count(0, 1);
    let (inner, m) = inner(file);
    m.xWrite
        .map_or(ffi::SQLITE_IOERR_WRITE, |w| w(inner, buf, amt, off))
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flush_first!(file);
    let (inner, m) = inner(file);
    m.xTruncate
        .map_or(ffi::SQLITE_IOERR_TRUNCATE, |t| t(inner, size))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flush_first!(file);
    let (inner, m) = inner(file);
    m.xSync.map_or(ffi::SQLITE_IOERR_FSYNC, |s| s(inner, flags))
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flush_first!(file);
    let (inner, m) = inner(file);
    m.xFileSize
        .map_or(ffi::SQLITE_IOERR_FSTAT, |f| f(inner, size))
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (inner, m) = inner(file);
    m.xLock.map_or(ffi::SQLITE_OK, |l| l(inner, level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (inner, m) = inner(file);
    m.xUnlock.map_or(ffi::SQLITE_OK, |u| u(inner, level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (inner, m) = inner(file);
    m.xCheckReservedLock
        .map_or(ffi::SQLITE_OK, |c| c(inner, out))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // Whatever the control does with the file, it finds it written.
    flush_first!(file);
    let (inner, m) = inner(file);
    m.xFileControl
        .map_or(ffi::SQLITE_NOTFOUND, |f| f(inner, op, arg))
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, m) = inner(file);
    m.xSectorSize.map_or(4096, |s| s(inner))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, m) = inner(file);
    m.xDeviceCharacteristics.map_or(0, |d| d(inner))
}

#[cfg(test)]
mod tests;
