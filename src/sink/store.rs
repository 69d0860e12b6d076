//! The output root: a local directory or any `object_store` URL, opened as
//! one [`ObjectStore`] whose paths are relative to the root.

use super::{Result, SinkError};
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ObjectMeta, ObjectStore, ObjectStoreExt, ObjectStoreScheme, RetryConfig,
};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

use crate::config::OutputConfig;

/// The longest a request to a remote store is retried after its first
/// attempt (object_store advises staying under five minutes, so that signed
/// requests do not expire).
const RETRY_TIMEOUT: Duration = Duration::from_secs(180);

/// Environment variable prefixes forwarded to `object_store` builders
/// (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AZURE_…`, `GOOGLE_…`).
pub const STORE_ENV_PREFIXES: [&str; 3] = ["AWS_", "AZURE_", "GOOGLE_"];

/// An opened output root. Cheap to clone.
#[derive(Clone)]
pub struct OutputRoot {
    store: Arc<dyn ObjectStore>,
    display: String,
    local: Option<std::path::PathBuf>,
}

impl fmt::Debug for OutputRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputRoot")
            .field("root", &self.display)
            .finish()
    }
}

impl fmt::Display for OutputRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl OutputRoot {
    /// Opens `root` with store options taken from the environment
    /// (variables starting with [`STORE_ENV_PREFIXES`]) and the default
    /// retries.
    pub fn open(root: &str) -> Result<Self> {
        Self::open_with(root, std::iter::empty::<(String, String)>())
    }

    /// Opens the configured output root, retrying remote requests as
    /// `[output]` says (`max_retries`, `retry_initial`, `retry_max`).
    pub fn open_config(output: &OutputConfig) -> Result<Self> {
        Self::open_retrying(&output.url, std::iter::empty::<(String, String)>(), output)
    }

    /// Opens `root`: a plain relative or absolute path or a `file://` URL is a
    /// local directory (created if missing); any other URL (`s3://bucket/prefix`,
    /// `gs://…`, `az://…`, `memory:///`) goes through
    /// [`object_store::parse_url_opts`] with the environment's store variables
    /// followed by `options` (later keys win; keys as in the builders' config,
    /// e.g. `aws_endpoint`, `aws_region`, `aws_allow_http`), with the
    /// default retries.
    pub fn open_with<I, K, V>(root: &str, options: I) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        Self::open_retrying(root, options, &OutputConfig::default())
    }

    /// [`Self::open_with`], S3 requests retried as `retry` says: a transient
    /// failure (connection refused or cut, 5xx, throttling) is retried
    /// `max_retries` times, backing off from `retry_initial` to `retry_max`.
    fn open_retrying<I, K, V>(root: &str, options: I, retry: &OutputConfig) -> Result<Self>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let invalid = |reason: String| SinkError::InvalidRoot {
            root: root.to_string(),
            reason,
        };
        if root.trim().is_empty() {
            return Err(invalid("empty".into()));
        }
        let url = match Url::parse(root) {
            // One-letter schemes are Windows drive letters (`C:\out`).
            Ok(u) if u.scheme().len() > 1 => Some(u),
            _ => None,
        };
        let Some(url) = url else {
            return Self::local(root, std::path::Path::new(root));
        };
        if url.scheme() == "file" {
            let dir = url
                .to_file_path()
                .map_err(|()| invalid("file URL without a local path".into()))?;
            return Self::local(root, &dir);
        }
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| STORE_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
            .collect();
        let opts: Vec<(String, String)> = env
            .into_iter()
            .chain(
                options
                    .into_iter()
                    .map(|(k, v)| (k.as_ref().to_string(), v.into())),
            )
            .collect();
        let (scheme, _) = ObjectStoreScheme::parse(&url).map_err(|e| invalid(e.to_string()))?;
        let (store, prefix) = if scheme == ObjectStoreScheme::AmazonS3 {
            s3(&url, opts, retry).map_err(|e| invalid(e.to_string()))?
        } else {
            object_store::parse_url_opts(&url, opts).map_err(|e| invalid(e.to_string()))?
        };
        let store: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            Arc::from(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        };
        Ok(OutputRoot {
            store,
            display: root.to_string(),
            local: None,
        })
    }

    fn local(root: &str, dir: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| SinkError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| SinkError::InvalidRoot {
            root: root.to_string(),
            reason: e.to_string(),
        })?;
        Ok(OutputRoot {
            store: Arc::new(fs),
            display: root.to_string(),
            local: Some(dir.to_path_buf()),
        })
    }

    /// Wraps an existing store (tests, in-memory stores, custom clients).
    pub fn from_store(store: Arc<dyn ObjectStore>, display: impl Into<String>) -> Self {
        OutputRoot {
            store,
            display: display.into(),
            local: None,
        }
    }

    /// The directory of a local root (`file://` or a path).
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// The underlying store; paths are relative to the root.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Every object under `prefix`, sorted by path (stores list in no fixed order).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let p = Path::from(prefix);
        let mut out: Vec<ObjectMeta> =
            self.store
                .list(Some(&p))
                .try_collect()
                .await
                .map_err(|source| SinkError::Store {
                    op: "list",
                    path: prefix.to_string(),
                    source,
                })?;
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    /// Checks that the root can be listed (the bucket exists, credentials and
    /// endpoint work) before any processing, with a hint for common mistakes.
    pub async fn check_access(&self) -> Result<()> {
        let p = Path::from("_neonblue_access_check");
        let mut listing = self.store.list(Some(&p));
        match listing.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(source)) => {
                let text = source.to_string();
                let hint = if text.contains("URL scheme is not allowed") {
                    " (set AWS_ALLOW_HTTP=true for a plain-http endpoint)"
                } else if text.contains("NoSuchBucket") {
                    " (create the bucket first)"
                } else {
                    ""
                };
                Err(SinkError::InvalidRoot {
                    root: self.display.clone(),
                    reason: format!("cannot list it: {text}{hint}"),
                })
            }
        }
    }

    /// Deletes every object under the root (replay resets); returns how many.
    pub async fn delete_all_objects(&self) -> Result<usize> {
        let objects = self.list("").await?;
        for o in &objects {
            match self.store.delete(&o.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(SinkError::Store {
                        op: "delete",
                        path: o.location.to_string(),
                        source,
                    })
                }
            }
        }
        Ok(objects.len())
    }

    /// The whole content of one object.
    pub async fn get(&self, path: &Path) -> Result<bytes::Bytes> {
        let err = |source| SinkError::Store {
            op: "get",
            path: path.to_string(),
            source,
        };
        self.store
            .get(path)
            .await
            .map_err(err)?
            .bytes()
            .await
            .map_err(err)
    }
}

/// An S3 store for `url` with `options` (as [`object_store::parse_url_opts`]
/// takes them) and the retries of `retry`; returns it with the URL's path.
fn s3(
    url: &Url,
    options: Vec<(String, String)>,
    retry: &OutputConfig,
) -> object_store::Result<(Box<dyn ObjectStore>, Path)> {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    let builder = options.into_iter().fold(
        AmazonS3Builder::new().with_url(url.as_str()),
        |b, (key, value)| match key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            Ok(k) => b.with_config(k, value),
            Err(_) => b,
        },
    );
    let store = builder
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: retry.retry_initial,
                max_backoff: retry.retry_max,
                base: 2.0,
            },
            max_retries: retry.max_retries as usize,
            retry_timeout: RETRY_TIMEOUT,
        })
        .build()?;
    let (_, path) = ObjectStoreScheme::parse(url)?;
    Ok((Box::new(store), Path::parse(path)?))
}
