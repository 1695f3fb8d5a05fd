//! The cluster's state: objects under one resourceVersion counter, the history of their changes
//! (for watches that resume), and the feed that tells open watches about new ones.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::faults::Faults;
use super::objects::rfc3339;
use super::record::{Request, ScaleWrite};
use super::resource::Resource;
use super::selector::Selector;
use super::workloads::converge_status;

pub type Shared = Arc<Mutex<Store>>;

/// Locks the store; a test that panicked while holding it leaves usable data behind.
pub fn lock(shared: &Shared) -> MutexGuard<'_, Store> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where an object lives; `namespace` is empty for cluster-scoped resources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: Resource, namespace: &str, name: &str) -> Key {
        Key { resource, namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

/// A change as a watch streams it.
#[derive(Debug, Clone)]
pub struct Change {
    pub version: u64,
    pub resource: Resource,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    pub object: Value,
}

/// What open watches are told.
#[derive(Debug, Clone)]
pub enum Feed {
    Change(Change),
    /// Send a BOOKMARK at this version (to the watches that allow them).
    Bookmark(u64),
    /// End every open watch now, as a restarting API server would.
    Close,
}

pub struct Store {
    version: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<Change>,
    /// Watches resuming from a version older than this are answered 410 Gone.
    compacted: u64,
    feed: broadcast::Sender<Feed>,
    pub requests: Vec<Request>,
    pub scale_writes: Vec<ScaleWrite>,
    pub faults: Faults,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            version: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            compacted: 0,
            feed: broadcast::channel(4096).0,
            requests: Vec::new(),
            scale_writes: Vec::new(),
            faults: Faults::default(),
        }
    }
}

impl Store {
    /// The current resourceVersion (of the whole store, as etcd's revision).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Stores `object` under a new resourceVersion (creating its uid and timestamp if new),
    /// tells the watches, and lets the simulated controllers react. Returns it as stored.
    pub fn put(&mut self, key: Key, mut object: Value) -> Value {
        self.version += 1;
        let kind = if self.objects.contains_key(&key) { "MODIFIED" } else { "ADDED" };
        let metadata = &mut object["metadata"];
        metadata["name"] = json!(key.name);
        if key.resource.namespaced() {
            metadata["namespace"] = json!(key.namespace);
        }
        metadata["resourceVersion"] = json!(self.version.to_string());
        if metadata["uid"].is_null() {
            metadata["uid"] = json!(format!("uid-{}-{}-{}", key.resource.plural(), key.namespace, key.name));
        }
        if metadata["creationTimestamp"].is_null() {
            metadata["creationTimestamp"] = json!(rfc3339(std::time::SystemTime::now()));
        }
        object["apiVersion"] = json!(key.resource.api_version());
        object["kind"] = json!(key.resource.kind());
        converge_status(key.resource, &mut object);
        self.objects.insert(key.clone(), object.clone());
        self.tell(key.resource, kind, object.clone());
        self.settle(&key);
        object
    }

    /// Removes an object; watches see it DELETED at a new version.
    pub fn delete(&mut self, key: &Key) -> Option<Value> {
        let mut object = self.objects.remove(key)?;
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.tell(key.resource, "DELETED", object.clone());
        Some(object)
    }

    /// The objects of `resource` in `namespace` (all when `None`) that `selector` matches.
    pub fn list(&self, resource: Resource, namespace: Option<&str>, selector: &Selector) -> Vec<Value> {
        let in_scope = |key: &Key| key.resource == resource && namespace.is_none_or(|n| n == key.namespace);
        self.objects.iter().filter(|(k, o)| in_scope(k) && selector.matches(o)).map(|(_, o)| o.clone()).collect()
    }

    /// The changes after `version`, oldest first; `Err(oldest kept)` when some were compacted away.
    pub fn changes_since(&self, version: u64) -> Result<impl Iterator<Item = &Change>, u64> {
        if version < self.compacted {
            return Err(self.compacted);
        }
        Ok(self.history.iter().filter(move |c| c.version > version))
    }

    /// Forgets the history up to now, as etcd compaction does: a watch resuming from an older
    /// version gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.version;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Feed> {
        self.feed.subscribe()
    }

    /// Sends to every open watch (none may be open: that is fine).
    pub fn broadcast(&self, feed: Feed) {
        let _ = self.feed.send(feed);
    }

    fn tell(&mut self, resource: Resource, kind: &'static str, object: Value) {
        let change = Change { version: self.version, resource, kind, object };
        self.history.push(change.clone());
        self.broadcast(Feed::Change(change));
    }
}
