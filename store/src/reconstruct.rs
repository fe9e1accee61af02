//! Reconstruct: rebuilds a user's mailbox list, indexes, caches and usage from the
//! message files. (Filled in below.)
