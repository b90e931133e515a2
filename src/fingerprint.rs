//! Stable content hashes: FNV-1a (64 bit), the same on every platform and Rust version, for
//! naming what a file or a list holds (an ontology's content, a run's weights, the images of a
//! prediction). Not cryptographic: it tells changes apart, it does not resist forgery.
use std::io::Read;
use std::path::Path;

/// FNV-1a's offset basis: the hash of nothing.
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Continue the FNV-1a hash `hash` over `bytes`.
pub(crate) fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash of a file's bytes as 16 hex digits, read in 1 MiB pieces (a large weights file is
/// never held in memory whole).
pub(crate) fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut hash = FNV_START;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(hex(hash));
        }
        hash = fnv1a(&buf[..n], hash);
    }
}

/// A hash as 16 hex digits.
pub fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_files_hash_like_their_bytes() {
        // reference values of FNV-1a 64 (Fowler, Noll, Vo): "" and "a"
        assert_eq!(fnv1a(b"", FNV_START), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a", FNV_START), 0xaf63_dc4c_8601_ec8c);
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x");
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(file_hash(&p).unwrap(), hex(fnv1a(&bytes, FNV_START)), "pieces hash like the whole");
    }
}
