//! A small per-container cache with expiry and single-flight loading: many
//! records of one batch asking for the same project's destinations cause one
//! registry read, and a failed load is not cached.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// An entry: when it was created, and its value once loaded.
type Entry<V> = (Instant, Arc<OnceCell<V>>);

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get_or_try_load<F, Fut, E>(&self, key: &K, load: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let expired =
                |(at, cell): &Entry<V>| cell.initialized() && now.duration_since(*at) >= self.ttl;
            if entries.get(key).is_none_or(expired) {
                entries.insert(key.clone(), (now, Arc::new(OnceCell::new())));
            }
            entries.get(key).map(|(_, cell)| Arc::clone(cell))
        };
        match cell {
            Some(cell) => cell.get_or_try_init(load).await.cloned(),
            None => load().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_loads_of_one_key_run_once() {
        let cache = TtlCache::<&str, usize>::new(Duration::from_secs(60));
        let loads = AtomicUsize::new(0);
        let gets = (0..50).map(|_| {
            cache.get_or_try_load(&"k", || async {
                loads.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                Ok::<_, ()>(7)
            })
        });
        let results = futures_util::future::join_all(gets).await;
        assert!(results.iter().all(|r| *r == Ok(7)));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_entries_expire() {
        let cache = TtlCache::<u8, u8>::new(Duration::ZERO);
        assert_eq!(
            cache
                .get_or_try_load(&1, || async { Err::<u8, _>("down") })
                .await,
            Err("down")
        );
        assert_eq!(
            cache.get_or_try_load(&1, || async { Ok::<_, ()>(1) }).await,
            Ok(1)
        );
        // TTL zero: the next get reloads.
        assert_eq!(
            cache.get_or_try_load(&1, || async { Ok::<_, ()>(2) }).await,
            Ok(2)
        );
    }
}
