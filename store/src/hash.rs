//! The user hash (DESIGN §2): MD5 of the canonical address picks the bucket, the shard
//! and the fanout directories.
//!
//! MD5 is not a security use here: it was chosen so that any MTA script or operator can
//! compute the same value with `printf %s user@example.com | md5sum`. Never change it:
//! it decides where every user lives on disk.

use md5::{Digest, Md5};

use crate::address::Address;

/// MD5 of the canonical address string (no newline).
pub fn digest(addr: &Address) -> [u8; 16] {
    Md5::digest(addr.as_str().as_bytes()).into()
}

/// The first 16 bits of the digest, big-endian: the unit of ownership between shards,
/// roots and hosts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(pub u16);

impl Bucket {
    /// Number of distinct buckets.
    pub const COUNT: usize = 1 << 16;

    /// The bucket of an address.
    pub fn of(addr: &Address) -> Bucket {
        Self::of_digest(&digest(addr))
    }

    /// The bucket of an already computed digest.
    pub fn of_digest(digest: &[u8; 16]) -> Bucket {
        Bucket(u16::from_be_bytes([digest[0], digest[1]]))
    }

    /// The shard that owns this bucket: `bucket % shards`.
    ///
    /// # Panics
    /// When `shards` is 0: a caller with no shards has a configuration bug.
    pub fn shard(self, shards: usize) -> usize {
        assert!(shards >= 1, "shard count must be at least 1");
        usize::from(self.0) % shards
    }
}

/// The fanout directory names for a digest: the first `levels` bytes as two lower-case
/// hex digits each (`["ab", "cd"]`). `levels` is at most 16.
pub fn fanout_dirs(digest: &[u8; 16], levels: u8) -> Vec<String> {
    digest
        .iter()
        .take(usize::from(levels))
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // Expected values from `printf %s ADDRESS | md5sum`.
    #[test]
    fn known_answers() {
        let table = [
            (
                "alice@example.com",
                "c160f8cc69a4f0bf2b0362752353d060",
                0xc160,
            ),
            (
                "bob@example.com",
                "4b9bb80620f03eb3719e0a061c14283d",
                0x4b9b,
            ),
            ("x@y", "e1f9c3bb8f609c982da4c5efbd0dbe9d", 0xe1f9),
        ];
        for (input, md5sum, bucket) in table {
            let a = addr(input);
            assert_eq!(hex(&digest(&a)), md5sum, "{input}");
            assert_eq!(Bucket::of(&a), Bucket(bucket), "{input}");
        }
        // The sub-address and case do not change the owner.
        assert_eq!(
            digest(&addr("Bob+Lists@Example.COM")),
            digest(&addr("bob@example.com"))
        );
    }

    #[test]
    fn shards_and_fanout() {
        let d = digest(&addr("alice@example.com"));
        let b = Bucket::of_digest(&d);
        assert_eq!(b.shard(1), 0);
        assert_eq!(b.shard(7), 49504 % 7);
        assert_eq!(b.shard(usize::MAX), 49504);
        assert_eq!(fanout_dirs(&d, 0), Vec::<String>::new());
        assert_eq!(fanout_dirs(&d, 1), ["c1"]);
        assert_eq!(fanout_dirs(&d, 2), ["c1", "60"]);
        assert_eq!(fanout_dirs(&d, 3), ["c1", "60", "f8"]);
    }

    #[test]
    #[should_panic(expected = "shard count")]
    fn zero_shards_is_a_bug() {
        Bucket(1).shard(0);
    }
}
