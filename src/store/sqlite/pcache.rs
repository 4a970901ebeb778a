//! SQLite's own page cache (pcache1), with one key moved.
//!
//! When a B-tree balance leaves its new pages out of page-number order, SQLite swaps
//! two pages' numbers through a temporary one: the page that holds the locking range
//! (`PENDING_BYTE / page size + 1`, page 262,145 at 4 KiB), which never holds data
//! (sqlite3.c 3.46, `balance_nonroot`). pcache1 remembers the largest key it has
//! seen, so after such a swap it believes it holds a page near 262,145; the truncate
//! at the end of every transaction then walks its whole hash table (one slot per
//! cached page, thousands for the writer) instead of the few slots past the end of
//! the database. Under the A08 load that walk was 8% of the writer's time (README "The
//! page cache's walk per commit").
//!
//! The cache installed here hands every call to pcache1 unchanged, except that the
//! temporary page is filed under key 0: a page number SQLite never uses (pages start
//! at 1), so it cannot meet a real page, and it does not raise pcache1's largest
//! key. Every call that names a key (fetch, rekey) maps it the same way, so the page
//! is found where it was filed; a truncate to 0 drops it like any other, and no
//! truncate above 0 can meet it, because the temporary number lives only between two
//! rekeys inside one balance.

use std::os::raw::{c_int, c_uint};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// Where SQLite's locking range starts (sqlite3.c: `PENDING_BYTE`, 0x40000000 unless
/// a test build moves it).
const PENDING_BYTE: c_uint = 0x4000_0000;

/// pcache1's methods, captured before ours replace them.
struct Inner(ffi::sqlite3_pcache_methods2);
// SAFETY: a table of C function pointers and pcache1's global argument, written once
// before SQLite starts and only read afterwards; pcache1 does its own locking.
unsafe impl Sync for Inner {}
unsafe impl Send for Inner {}

static INNER: OnceLock<Inner> = OnceLock::new();

/// How many rekeys went through the temporary page (tests only: they check that
/// their workload made swaps).
#[cfg(test)]
static MOVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rekeys that went through the temporary page since the process started.
#[cfg(test)]
fn moved() -> u64 {
    MOVED.load(Ordering::Relaxed)
}

/// Set once SQLite has accepted the cache here.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Whether this process's SQLite runs on the cache here.
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

/// One cache: pcache1's, and the key that stands for the temporary page in it.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    temporary: c_uint,
}

/// Install the cache. Only before SQLite is initialised (`sqlite3_config` refuses
/// afterwards, and is not thread-safe): call it from `configure_process`.
pub(super) fn install() -> Result<(), c_int> {
    // SAFETY: both calls are made before SQLite is initialised (the caller's
    // contract). GETPCACHE2 fills the struct it is given; PCACHE2 copies ours.
    unsafe {
        let mut inner: ffi::sqlite3_pcache_methods2 = std::mem::zeroed();
        let rc = ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_GETPCACHE2,
            &mut inner as *mut ffi::sqlite3_pcache_methods2,
        );
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
        if INNER.set(Inner(inner)).is_err() {
            // A second install (configure_process runs it once): ours are in place
            // already, and capturing them as "pcache1's" would loop.
            return Err(ffi::SQLITE_MISUSE);
        }
        let ours = ffi::sqlite3_pcache_methods2 {
            iVersion: 1,
            pArg: inner.pArg,
            xInit: inner.xInit,
            xShutdown: inner.xShutdown,
            xCreate: Some(create),
            xCachesize: Some(cachesize),
            xPagecount: Some(pagecount),
            xFetch: Some(fetch),
            xUnpin: Some(unpin),
            xRekey: Some(rekey),
            xTruncate: Some(truncate),
            xDestroy: Some(destroy),
            xShrink: Some(shrink),
        };
        let rc = ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_PCACHE2,
            &ours as *const ffi::sqlite3_pcache_methods2,
        );
        if rc != ffi::SQLITE_OK {
            return Err(rc);
        }
    }
    INSTALLED.store(true, Ordering::Relaxed);
    Ok(())
}

fn inner() -> &'static ffi::sqlite3_pcache_methods2 {
    // Our methods are installed only after INNER is set.
    &INNER.get().expect("pcache1's methods captured").0
}

/// The key pcache1 files `key` under in `cache`.
fn key_in(cache: &Cache, key: c_uint) -> c_uint {
    if key == cache.temporary {
        0
    } else {
        key
    }
}

unsafe extern "C" fn create(
    page: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let made = match inner().xCreate {
        Some(f) => f(page, extra, purgeable),
        None => return std::ptr::null_mut(),
    };
    if made.is_null() {
        return made;
    }
    let temporary = if page > 0 {
        PENDING_BYTE / page as c_uint + 1
    } else {
        0
    };
    Box::into_raw(Box::new(Cache {
        inner: made,
        temporary,
    })) as *mut ffi::sqlite3_pcache
}

/// SAFETY (all below): SQLite passes back only pointers `create` returned, until
/// `destroy`.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a Cache {
    &*(p as *const Cache)
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    if let Some(f) = inner().xCachesize {
        f(cache(p).inner, n)
    }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    inner().xPagecount.map_or(0, |f| f(cache(p).inner))
}

unsafe extern "C" fn fetch(
    p: *mut ffi::sqlite3_pcache,
    key: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    let c = cache(p);
    inner()
        .xFetch
        .map_or(std::ptr::null_mut(), |f| f(c.inner, key_in(c, key), create))
}

unsafe extern "C" fn unpin(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    if let Some(f) = inner().xUnpin {
        f(cache(p).inner, page, discard)
    }
}

unsafe extern "C" fn rekey(
    p: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    let c = cache(p);
    #[cfg(test)]
    if new == c.temporary {
        MOVED.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(f) = inner().xRekey {
        f(c.inner, page, key_in(c, old), key_in(c, new))
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    if let Some(f) = inner().xTruncate {
        f(cache(p).inner, limit)
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    let c = Box::from_raw(p as *mut Cache);
    if let Some(f) = inner().xDestroy {
        f(c.inner)
    }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    if let Some(f) = inner().xShrink {
        f(cache(p).inner)
    }
}

#[cfg(test)]
mod tests;
