//! Which shard owns a recipient, computed exactly like the server (DESIGN.md section 2), so
//! `--shard-aware` delivery goes straight to the owner's LMTP port.

use md5::{Digest, Md5};

/// Lower-cased `local@domain` with any `+detail` removed from the local part.
pub fn canonical_address(address: &str) -> String {
    let lower = address.trim().to_ascii_lowercase();
    match lower.rsplit_once('@') {
        Some((local, domain)) => {
            let local = local.split_once('+').map_or(local, |(base, _)| base);
            format!("{local}@{domain}")
        }
        None => lower
            .split_once('+')
            .map_or(lower.clone(), |(b, _)| b.to_string()),
    }
}

/// The first 16 bits (big-endian) of the MD5 of the canonical address.
pub fn bucket_of(address: &str) -> u16 {
    let digest = Md5::digest(canonical_address(address).as_bytes());
    u16::from_be_bytes([digest[0], digest[1]])
}

/// `bucket % shards`; `shards` must be at least 1.
pub fn shard_of(address: &str, shards: u16) -> u16 {
    assert!(shards > 0, "shard count must be positive");
    bucket_of(address) % shards
}

/// The LMTP port of the owning shard: the shared port + 1 + shard.
pub fn shard_port(lmtp_port: u16, shard: u16) -> Option<u16> {
    lmtp_port.checked_add(1)?.checked_add(shard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form() {
        assert_eq!(canonical_address("User1@Example.COM"), "user1@example.com");
        assert_eq!(
            canonical_address("user1+lists@example.com"),
            "user1@example.com"
        );
        assert_eq!(canonical_address("a+b+c@x.org"), "a@x.org");
    }

    // Expected values from `printf %s user1@example.com | md5sum`:
    //   user1@example.com  111d68d06e2d317b5a59c2c6c5bad808 -> bucket 0x111d = 4381
    //   user2@example.com  ab53a2911ddf9b4817ac01ddcd3d975f -> bucket 0xab53 = 43859
    //   user42@example.com 4954756b2cdeccd47bc819726b270303 -> bucket 0x4954 = 18772
    #[test]
    fn buckets_match_md5sum() {
        assert_eq!(bucket_of("user1@example.com"), 0x111d);
        assert_eq!(bucket_of("user2@example.com"), 0xab53);
        assert_eq!(bucket_of("user42@example.com"), 0x4954);
        assert_eq!(bucket_of("USER1+news@example.com"), 0x111d);
    }

    #[test]
    fn shards_match_md5sum() {
        assert_eq!(shard_of("user1@example.com", 4), 1);
        assert_eq!(shard_of("user1@example.com", 3), 1);
        assert_eq!(shard_of("user2@example.com", 4), 3);
        assert_eq!(shard_of("user2@example.com", 3), 2);
        assert_eq!(shard_of("user42@example.com", 4), 0);
        assert_eq!(shard_of("user42@example.com", 7), 5);
        assert_eq!(shard_of("user42@example.com", 1), 0);
    }

    #[test]
    fn port_of_shard() {
        assert_eq!(shard_port(2424, 0), Some(2425));
        assert_eq!(shard_port(2424, 3), Some(2428));
        assert_eq!(shard_port(65535, 0), None);
    }
}
