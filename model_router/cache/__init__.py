"""The response cache: whole answers of requests whose answer is a function of the request.

keys (what makes two requests the same: key_of, scope_of, cacheable), answer (CachedAnswer),
store (in-process LRU or Redis), semantic (paraphrases by embedding, near misses refused),
cache (ResponseCache: the facade the router asks).
"""
from .answer import CachedAnswer
from .cache import DEFAULT_MODE, MODES, ResponseCache, check_mode
from .keys import cacheable, key_of, query_of, scope_of
from .store import CacheSettingError, parse_cache_url

__all__ = ["CachedAnswer", "ResponseCache", "MODES", "DEFAULT_MODE", "check_mode", "cacheable", "key_of",
           "scope_of", "query_of", "CacheSettingError", "parse_cache_url"]
