//! Heavy work on the current run, off the frame: the logit lens and final
//! top-k of a selected position (the worker streams them for the last one
//! only), saliency (a backward pass) and the PCA of a hidden state. Each is an
//! [`Analysis`]: a task keyed by what it is computed from; asking for another
//! key drops (cancels) the older task, and the panels read finished results.

use bevy::tasks::{AsyncComputeTaskPool, Task, block_on, futures_lite::future};

/// One background computation and its latest result, each with its key.
pub struct Analysis<K, V> {
    pending: Option<(K, Task<V>)>,
    done: Option<(K, V)>,
}

impl<K, V> Default for Analysis<K, V> {
    fn default() -> Self {
        Analysis {
            pending: None,
            done: None,
        }
    }
}

impl<K: PartialEq + Clone, V: Send + 'static> Analysis<K, V> {
    /// Starts `compute` for `key` unless it is already running or done.
    pub fn want(&mut self, key: K, compute: impl FnOnce() -> V + Send + 'static) {
        if self.pending.as_ref().is_some_and(|(k, _)| *k == key) || self.result(&key).is_some() {
            return;
        }
        let task = AsyncComputeTaskPool::get().spawn(async move { compute() });
        self.pending = Some((key, task));
    }

    /// Moves a finished task's result into place; true when one finished.
    pub fn poll(&mut self) -> bool {
        let Some((_, task)) = &mut self.pending else {
            return false;
        };
        let Some(value) = block_on(future::poll_once(task)) else {
            return false;
        };
        if let Some((key, _)) = self.pending.take() {
            self.done = Some((key, value));
        }
        true
    }

    /// The finished result for `key`.
    pub fn result(&self, key: &K) -> Option<&V> {
        self.done.as_ref().filter(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The latest finished result, whatever its key.
    pub fn latest(&self) -> Option<&(K, V)> {
        self.done.as_ref()
    }

    /// Whether `key` is being computed.
    pub fn running(&self, key: &K) -> bool {
        self.pending.as_ref().is_some_and(|(k, _)| k == key)
    }

    /// Drops the task and the result.
    pub fn clear(&mut self) {
        *self = Analysis::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_arrives_for_its_key_and_a_new_key_replaces_the_task() {
        AsyncComputeTaskPool::get_or_init(bevy::tasks::TaskPool::new);
        let mut a: Analysis<u32, u32> = Analysis::default();
        a.want(1, || 10);
        a.want(2, || 20);
        assert!(!a.running(&1) && a.running(&2));
        while !a.poll() {
            std::thread::yield_now();
        }
        assert_eq!(a.result(&2), Some(&20));
        assert_eq!(a.result(&1), None);
        a.want(2, || unreachable!("already computed"));
        assert!(!a.running(&2));
    }
}
