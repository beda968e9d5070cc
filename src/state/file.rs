//! The file backend: one directory per stack, a checkpoint plus an append-only journal.
//!
//! ```text
//! <root>/<stack>/state.json     checkpoint: {"generation": n, "state": {...}}
//! <root>/<stack>/journal.jsonl  line 1: {"generation": n}; then one JSON array of changes per line
//! <root>/<stack>/lock           OS lock (flock) + the holder's lock info
//! ```
//!
//! A step appends one line (group-committed: concurrent steps share one `fsync`), so its cost
//! is the size of what it changed, not of the whole state. Releasing the lock compacts the
//! journal into a new checkpoint, written to a temporary file, synced and renamed into place.
//! A journal whose generation differs from the checkpoint's was already compacted and is
//! ignored. A last line without its newline is a write torn by a crash, never acknowledged:
//! it is ignored and compacted away. Anything else that cannot be read is reported with its
//! path and line, and never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{Change, LockInfo, StackState, StateBackend, StateError, StateSession, SCHEMA_VERSION};

const CHECKPOINT: &str = "state.json";
const JOURNAL: &str = "journal.jsonl";
const LOCK: &str = "lock";

/// State kept in files under a directory (`.cairn/` by default), one subdirectory per stack.
#[derive(Debug, Clone)]
pub struct FileBackend {
    dir: PathBuf,
    stack: String,
    written: Arc<AtomicU64>,
}

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    generation: u64,
    state: StackState,
}

#[derive(Serialize, Deserialize)]
struct JournalHeader {
    generation: u64,
}

struct Loaded {
    state: StackState,
    generation: u64,
    /// Whether the journal must be rewritten before appending (stale, missing or torn).
    journal_needs_reset: bool,
    journal_entries: usize,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io { action, path: path.to_path_buf(), source }
}

impl FileBackend {
    /// The backend for `stack` under `root` (its state lives in `root/<stack>/`).
    pub fn new(root: impl Into<PathBuf>, stack: &str) -> FileBackend {
        let dir = root.into().join(stack);
        FileBackend { dir, stack: stack.to_string(), written: Arc::new(AtomicU64::new(0)) }
    }

    /// The stack's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes this backend has written to the state directory so far (for benchmarks).
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn load(&self) -> Result<Loaded, StateError> {
        let checkpoint_path = self.dir.join(CHECKPOINT);
        let (mut state, generation) = match fs::read(&checkpoint_path) {
            Ok(bytes) => {
                let cp = parse_checkpoint(&checkpoint_path, &bytes)?;
                if cp.state.stack != self.stack {
                    return Err(StateError::WrongStack {
                        path: checkpoint_path,
                        found: cp.state.stack,
                        expected: self.stack.clone(),
                    });
                }
                (cp.state, cp.generation)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => (StackState::empty(&self.stack), 0),
            Err(e) => return Err(io("read", &checkpoint_path)(e)),
        };
        let journal_path = self.dir.join(JOURNAL);
        let text = match fs::read(&journal_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Loaded { state, generation, journal_needs_reset: true, journal_entries: 0 })
            }
            Err(e) => return Err(io("read", &journal_path)(e)),
        };
        let text = String::from_utf8(text).map_err(|e| StateError::Corrupt {
            path: journal_path.clone(),
            line: None,
            message: format!("not UTF-8: {e}"),
        })?;
        let torn = !text.is_empty() && !text.ends_with('\n');
        let mut lines: Vec<&str> = text.split('\n').collect();
        // The piece after the last newline: empty, or a torn write.
        let tail = lines.pop().unwrap_or_default();
        if torn {
            tracing::warn!(path = %journal_path.display(), bytes = tail.len(), "ignoring a torn last journal line left by a crash");
        }
        let Some(first) = lines.first() else {
            return Ok(Loaded { state, generation, journal_needs_reset: true, journal_entries: 0 });
        };
        let header: JournalHeader = serde_json::from_str(first).map_err(|e| StateError::Corrupt {
            path: journal_path.clone(),
            line: Some(1),
            message: format!("bad journal header: {e}"),
        })?;
        if header.generation != generation {
            // Compacted into the checkpoint already.
            return Ok(Loaded { state, generation, journal_needs_reset: true, journal_entries: 0 });
        }
        for (i, line) in lines.iter().enumerate().skip(1) {
            let batch: Vec<Change> = serde_json::from_str(line).map_err(|e| StateError::Corrupt {
                path: journal_path.clone(),
                line: Some(i + 1),
                message: e.to_string(),
            })?;
            for change in &batch {
                state.apply(change);
            }
        }
        Ok(Loaded { state, generation, journal_needs_reset: torn, journal_entries: lines.len() - 1 })
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        write_atomically(&self.dir, name, bytes)?;
        self.written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn write_checkpoint(&self, generation: u64, state: &StackState) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec(&Checkpoint { generation, state: state.clone() })
            .map_err(|e| StateError::Other(format!("cannot serialize state: {e}")))?;
        bytes.push(b'\n');
        self.write_atomically(CHECKPOINT, &bytes)
    }

    fn reset_journal(&self, generation: u64) -> Result<(), StateError> {
        let mut header = serde_json::to_vec(&JournalHeader { generation }).expect("header serializes");
        header.push(b'\n');
        self.write_atomically(JOURNAL, &header)
    }

    /// Folds the journal into a new checkpoint and starts an empty journal.
    fn compact(&self) -> Result<(), StateError> {
        let loaded = self.load()?;
        if loaded.journal_entries == 0 && !loaded.journal_needs_reset {
            return Ok(());
        }
        let next = loaded.generation + 1;
        self.write_checkpoint(next, &loaded.state)?;
        self.reset_journal(next)
    }

    fn open_lock_file(&self) -> Result<File, StateError> {
        fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let path = self.dir.join(LOCK);
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io("open", &path))
    }

    fn holder_of(&self, file: &mut File) -> Result<Option<LockInfo>, StateError> {
        let path = self.dir.join(LOCK);
        let mut text = String::new();
        file.seek(SeekFrom::Start(0)).map_err(io("read", &path))?;
        file.read_to_string(&mut text).map_err(io("read", &path))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| StateError::Corrupt {
            path,
            line: None,
            message: format!("bad lock info: {e}"),
        })
    }
}

fn parse_checkpoint(path: &Path, bytes: &[u8]) -> Result<Checkpoint, StateError> {
    let corrupt = |message: String| StateError::Corrupt { path: path.to_path_buf(), line: None, message };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let version = value
        .get("state")
        .and_then(|s| s.get("version"))
        .and_then(|v| v.as_u64())
        .ok_or_else(|| corrupt("no state.version".into()))?;
    if version > u64::from(SCHEMA_VERSION) {
        return Err(StateError::NewerSchema {
            path: path.to_path_buf(),
            found: version as u32,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))
}

/// Writes `dir/name` through a temporary file, synced and renamed into place, then syncs the
/// directory so that the rename survives a power loss.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    fs::create_dir_all(dir).map_err(io("create", dir))?;
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &target).map_err(io("rename into", &target))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("sync", dir))?;
    Ok(())
}

#[async_trait::async_trait]
impl StateBackend for FileBackend {
    fn describe(&self) -> String {
        format!("file {}", self.dir.display())
    }

    async fn read(&self) -> Result<StackState, StateError> {
        let this = self.clone();
        blocking(move || this.load().map(|l| l.state)).await
    }

    async fn lock_until(
        &self,
        info: LockInfo,
        timeout: Option<Duration>,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Box<dyn StateSession>, StateError> {
        let this = self.clone();
        let cancelled = Arc::new(AtomicBool::new(false));
        let flag = cancelled.clone();
        let mut waiting = tokio::task::spawn_blocking(move || this.lock_blocking(info, timeout, &flag));
        let session = tokio::select! {
            done = &mut waiting => done,
            () = crate::interrupt::until_true(cancel) => {
                // The waiting thread sees the flag within one poll and gives up; a lock it
                // took just before is released with the session it returns.
                cancelled.store(true, Ordering::SeqCst);
                let _ = waiting.await;
                return Err(StateError::Interrupted);
            }
        };
        let session = session.map_err(|e| StateError::Other(format!("state task failed: {e}")))??;
        Ok(Box::new(session))
    }

    async fn lock_holder(&self) -> Result<Option<LockInfo>, StateError> {
        let this = self.clone();
        blocking(move || {
            let path = this.dir.join(LOCK);
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io("open", &path)(e)),
            };
            match file.try_lock_shared() {
                // Nobody holds it: whatever info is there is stale.
                Ok(()) => Ok(None),
                Err(_) => this.holder_of(&mut file),
            }
        })
        .await
    }

    async fn force_unlock(&self, lock_id: &str) -> Result<LockInfo, StateError> {
        let this = self.clone();
        let lock_id = lock_id.to_string();
        blocking(move || {
            let mut file = this.open_lock_file()?;
            let current = this.holder_of(&mut file)?;
            match current {
                Some(info) if info.id == lock_id => match file.try_lock() {
                    Ok(()) => {
                        file.set_len(0).map_err(io("truncate", &this.dir.join(LOCK)))?;
                        Ok(info)
                    }
                    Err(_) => Err(StateError::LockAlive { pid: info.pid, host: info.host }),
                },
                other => Err(StateError::LockMismatch { given: lock_id, current: other.map(Box::new) }),
            }
        })
        .await
    }
}

impl FileBackend {
    fn lock_blocking(
        &self,
        info: LockInfo,
        timeout: Option<Duration>,
        cancelled: &AtomicBool,
    ) -> Result<FileSession, StateError> {
        let mut file = self.open_lock_file()?;
        let lock_path = self.dir.join(LOCK);
        let started = Instant::now();
        loop {
            if cancelled.load(Ordering::SeqCst) {
                return Err(StateError::Interrupted);
            }
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let waited = started.elapsed();
                    if timeout.is_none_or(|t| waited >= t) {
                        let holder = self.holder_of(&mut file)?.unwrap_or_else(|| LockInfo {
                            id: "?".into(),
                            operation: "?".into(),
                            who: "an unknown process".into(),
                            host: "?".into(),
                            pid: 0,
                            version: "?".into(),
                            created: "?".into(),
                        });
                        return Err(StateError::LockHeld { holder: Box::new(holder), waited: timeout.map(|_| waited) });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
            }
        }
        // We hold the OS lock. Info left in the file belongs to a process that died holding it.
        if let Ok(Some(stale)) = self.holder_of(&mut file) {
            tracing::warn!(
                "taking over the lock left by {} (pid {}, `{}` since {}): that process is gone",
                stale.who,
                stale.pid,
                stale.operation,
                stale.created
            );
        }
        let mut bytes = serde_json::to_vec_pretty(&info).expect("lock info serializes");
        bytes.push(b'\n');
        file.set_len(0).map_err(io("truncate", &lock_path))?;
        file.seek(SeekFrom::Start(0)).map_err(io("write", &lock_path))?;
        file.write_all(&bytes).map_err(io("write", &lock_path))?;
        file.sync_data().map_err(io("sync", &lock_path))?;

        // Validate what is there before anything else is written; never overwrite what we
        // could not read.
        let loaded = match self.load() {
            Ok(l) => l,
            Err(e) => {
                let _ = file.set_len(0);
                return Err(e);
            }
        };
        if loaded.journal_needs_reset {
            let result = if self.dir.join(JOURNAL).exists() {
                // A torn tail or a stale journal: fold everything valid into a new generation.
                self.write_checkpoint(loaded.generation + 1, &loaded.state)
                    .and_then(|_| self.reset_journal(loaded.generation + 1))
            } else {
                self.reset_journal(loaded.generation)
            };
            if let Err(e) = result {
                let _ = file.set_len(0);
                return Err(e);
            }
        }
        let journal_path = self.dir.join(JOURNAL);
        let journal = OpenOptions::new().append(true).open(&journal_path).map_err(io("open", &journal_path))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let written = self.written.clone();
        let writer = std::thread::Builder::new()
            .name("cairn-journal".into())
            .spawn(move || journal_writer(journal, journal_path, rx, written))
            .map_err(|e| StateError::Other(format!("cannot start the journal writer: {e}")))?;
        Ok(FileSession { backend: self.clone(), info, lock_file: file, tx: Some(tx), writer: Some(writer) })
    }
}

type WriteRequest = (Vec<u8>, oneshot::Sender<Result<(), String>>);

/// Appends batches to the journal. Requests that arrive while one `fsync` runs are written and
/// synced together (group commit), so parallel steps do not queue behind each other's syncs.
fn journal_writer(
    mut file: File,
    path: PathBuf,
    mut rx: mpsc::UnboundedReceiver<WriteRequest>,
    written: Arc<AtomicU64>,
) {
    let mut failed: Option<String> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let result = match &failed {
            Some(e) => Err(e.clone()),
            None => {
                let mut buf = Vec::with_capacity(group.iter().map(|(b, _)| b.len()).sum());
                for (bytes, _) in &group {
                    buf.extend_from_slice(bytes);
                }
                let r = file.write_all(&buf).and_then(|_| file.sync_data());
                match r {
                    Ok(()) => {
                        written.fetch_add(buf.len() as u64, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(e) => {
                        // After a failed append the file's tail is unknown: refuse every later write.
                        let msg = format!("cannot append to {}: {e}", path.display());
                        failed = Some(msg.clone());
                        Err(msg)
                    }
                }
            }
        };
        for (_, ack) in group {
            let _ = ack.send(result.clone());
        }
    }
}

struct FileSession {
    backend: FileBackend,
    info: LockInfo,
    lock_file: File,
    tx: Option<mpsc::UnboundedSender<WriteRequest>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl FileSession {
    fn stop_writer(&mut self) {
        self.tx.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for FileSession {
    fn drop(&mut self) {
        self.stop_writer();
        // The OS lock goes with the file; leave no stale info behind.
        let _ = self.lock_file.set_len(0);
    }
}

#[async_trait::async_trait]
impl StateSession for FileSession {
    fn lock_info(&self) -> &LockInfo {
        &self.info
    }

    async fn load(&mut self) -> Result<StackState, StateError> {
        let backend = self.backend.clone();
        blocking(move || backend.load().map(|l| l.state)).await
    }

    async fn write(&self, changes: Vec<Change>) -> Result<(), StateError> {
        let mut line = serde_json::to_vec(&changes)
            .map_err(|e| StateError::Other(format!("cannot serialize state change: {e}")))?;
        line.push(b'\n');
        let (ack, done) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or_else(|| StateError::Other("the state session is closed".into()))?;
        tx.send((line, ack)).map_err(|_| StateError::Other("the journal writer stopped".into()))?;
        done.await.map_err(|_| StateError::Other("the journal writer stopped".into()))?.map_err(StateError::Other)
    }

    async fn replace(&self, state: StackState) -> Result<(), StateError> {
        let backend = self.backend.clone();
        let tx = self.tx.clone();
        // Wait for queued appends, then swap in a new generation.
        if let Some(tx) = tx {
            let (ack, done) = oneshot::channel();
            let _ = tx.send((Vec::new(), ack));
            let _ = done.await;
        }
        blocking(move || {
            let generation = backend.load()?.generation + 1;
            backend.write_checkpoint(generation, &state)?;
            backend.reset_journal(generation)
        })
        .await
    }

    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        self.stop_writer();
        let backend = self.backend.clone();
        let result = blocking(move || backend.compact()).await;
        drop(self);
        result
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StateError::Other(format!("state task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ResourceState, StateBackend};
    use crate::urn::Urn;
    use serde_json::json;

    fn resource(name: &str) -> ResourceState {
        ResourceState {
            urn: Urn::from(format!("s/t:x/{name}")),
            type_token: "t:x".into(),
            id: name.into(),
            inputs: json!({"n": name}),
            outputs: json!({}),
            dependencies: Default::default(),
            protect: false,
            retain_on_delete: false,
            delete_before_replace: false,
            provider: None,
        }
    }

    #[tokio::test]
    async fn writes_survive_release_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path(), "s");
        let session = backend.lock(LockInfo::new("test"), None).await.unwrap();
        session.write(vec![Change::PutResource(resource("a"))]).await.unwrap();
        session
            .write(vec![Change::PutResource(resource("b")), Change::RemoveResource(Urn::from("s/t:x/a"))])
            .await
            .unwrap();
        // Visible before compaction, through the journal.
        assert_eq!(backend.read().await.unwrap().resources.len(), 1);
        session.release().await.unwrap();
        let state = backend.read().await.unwrap();
        assert_eq!(state.resources.keys().map(|u| u.as_str()).collect::<Vec<_>>(), ["s/t:x/b"]);
        let journal = fs::read_to_string(dir.path().join("s/journal.jsonl")).unwrap();
        assert_eq!(journal.lines().count(), 1, "compaction leaves only the header");
    }

    #[tokio::test]
    async fn torn_tail_is_ignored_and_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path(), "s");
        let session = backend.lock(LockInfo::new("test"), None).await.unwrap();
        session.write(vec![Change::PutResource(resource("a"))]).await.unwrap();
        drop(session);
        let path = dir.path().join("s/journal.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"[{"op":"put_resource","urn":"#).unwrap();
        assert_eq!(backend.read().await.unwrap().resources.len(), 1);
        let session = backend.lock(LockInfo::new("test"), None).await.unwrap();
        session.write(vec![Change::PutResource(resource("b"))]).await.unwrap();
        session.release().await.unwrap();
        assert_eq!(backend.read().await.unwrap().resources.len(), 2);
    }

    #[tokio::test]
    async fn corrupt_state_is_reported_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let stack_dir = dir.path().join("s");
        fs::create_dir_all(&stack_dir).unwrap();
        fs::write(stack_dir.join(CHECKPOINT), b"{\"generation\": 1, \"state\": {\"vers").unwrap();
        let backend = FileBackend::new(dir.path(), "s");
        let err = backend.lock(LockInfo::new("test"), None).await.err().unwrap();
        assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("state.json"), "{err}");
        assert_eq!(fs::read(stack_dir.join(CHECKPOINT)).unwrap(), b"{\"generation\": 1, \"state\": {\"vers");
        assert!(!stack_dir.join(JOURNAL).exists());
    }

    #[tokio::test]
    async fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let stack_dir = dir.path().join("s");
        fs::create_dir_all(&stack_dir).unwrap();
        fs::write(stack_dir.join(CHECKPOINT), br#"{"generation": 1, "state": {"version": 99, "stack": "s"}}"#).unwrap();
        let err = FileBackend::new(dir.path(), "s").read().await.unwrap_err();
        assert!(matches!(err, StateError::NewerSchema { found: 99, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_second_locker_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let backend = FileBackend::new(dir.path(), "s");
        let first = backend.lock(LockInfo::new("deploy"), None).await.unwrap();
        let err = backend.lock(LockInfo::new("destroy"), None).await.err().unwrap();
        match &err {
            StateError::LockHeld { holder, .. } => assert_eq!(holder.id, first.lock_info().id),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("deploy"), "{err}");
        let err = backend.lock(LockInfo::new("destroy"), Some(Duration::from_millis(100))).await.err().unwrap();
        assert!(err.to_string().contains("gave up after waiting"), "{err}");
        first.release().await.unwrap();
        backend.lock(LockInfo::new("destroy"), None).await.unwrap().release().await.unwrap();
    }
}
