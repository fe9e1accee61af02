//! Every limit of the store in one place, each with the reason it exists.

/// RFC 5321 §4.5.3.1.3: a forward-path holds at most 256 octets including `<>`.
pub const ADDRESS_BYTES_MAX: usize = 254;
/// RFC 5321 §4.5.3.1.1: the local part is at most 64 octets.
pub const LOCAL_PART_BYTES_MAX: usize = 64;
/// RFC 1035 §2.3.4: a domain name is at most 253 octets in text form.
pub const DOMAIN_BYTES_MAX: usize = 253;
/// RFC 1035 §2.3.4: a single domain label is at most 63 octets.
pub const DOMAIN_LABEL_BYTES_MAX: usize = 63;
/// A full name is for display; anything longer is a mistake or an attack on the profile.
pub const NAME_BYTES_MAX: usize = 256;
/// Bounds argon2 input work; no human types a password longer than this.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// A profile is a handful of short lines; a bigger file is damaged and is not read whole.
pub const PROFILE_BYTES_MAX: usize = 64 * 1024;
/// The format file is a few short lines; a bigger file is not ours.
pub const FORMAT_BYTES_MAX: usize = 4 * 1024;
/// Three hex levels give 16M leaf directories, more than any store needs (DESIGN §2).
pub const FANOUT_LEVELS_MAX: u8 = 3;
/// A root is a disk; the format file stores the count and the bucket→root map uses u16.
pub const ROOTS_MAX: usize = 256;
/// A PHC argon2 string is about 100 bytes; room for stronger parameters, no more.
pub const PASSWORD_HASH_BYTES_MAX: usize = 512;
