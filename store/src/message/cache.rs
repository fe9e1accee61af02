pub struct CacheError;
