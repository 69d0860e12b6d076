//! Writing and reading changelog partitions.

use super::{KafkaError, ADMIN_TIMEOUT};
use neonblue_state::ChangeRecord;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// An idempotent producer for changelog, checkpoint and repartition records.
#[derive(Clone)]
pub struct ChangelogProducer {
    producer: FutureProducer,
}

impl ChangelogProducer {
    /// An idempotent producer (`acks=all`, ordered retries) on `base`;
    /// `linger.ms` 5, `compression.type` lz4 and `message.timeout.ms` 120 s
    /// unless `base` sets them.
    pub fn new(base: &ClientConfig) -> Result<Self, KafkaError> {
        let mut config = base.clone();
        config.set("enable.idempotence", "true");
        for (k, v) in [
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("message.timeout.ms", "120000"),
        ] {
            super::set_unless_given(&mut config, k, v);
        }
        let producer: FutureProducer = config.create()?;
        Ok(ChangelogProducer { producer })
    }

    /// The underlying producer.
    pub fn inner(&self) -> &FutureProducer {
        &self.producer
    }

    /// Queues one record for `topic`/`partition`; await the future for its offset.
    pub fn send(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<DeliveryFuture, KafkaError> {
        let mut rec = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(partition)
            .key(key);
        if let Some(v) = value {
            rec = rec.payload(v);
        }
        self.send_record(rec)
    }

    /// Queues a prepared record, waiting while the local queue is full
    /// (backpressure: never dropped).
    pub fn send_record<'a>(
        &self,
        mut rec: FutureRecord<'a, [u8], [u8]>,
    ) -> Result<DeliveryFuture, KafkaError> {
        loop {
            match self.producer.send_result(rec) {
                Ok(f) => return Ok(f),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    rec = r;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits for every delivery; returns the offset of the last one.
    pub fn await_all(futures: Vec<DeliveryFuture>) -> Result<Option<i64>, KafkaError> {
        let mut last = None;
        for f in futures {
            match futures::executor::block_on(f) {
                Ok(Ok(d)) => last = Some(d.offset),
                Ok(Err((e, _))) => return Err(e.into()),
                Err(_) => {
                    return Err(KafkaError::Timeout(
                        "producer dropped a delivery (shutting down?)".into(),
                    ))
                }
            }
        }
        Ok(last)
    }

    /// Writes store changes to one changelog partition and waits for them;
    /// returns the log end after them, or `None` when there were none.
    pub fn write_changes(
        &self,
        topic: &str,
        partition: i32,
        changes: &[ChangeRecord],
    ) -> Result<Option<i64>, KafkaError> {
        let futures = changes
            .iter()
            .map(|c| self.send(topic, partition, &c.key, c.value.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::await_all(futures)?.map(|o| o + 1))
    }
}

/// Reads one partition of a topic between two offsets, without a group.
pub struct PartitionReader {
    consumer: BaseConsumer<super::ReadToEnd>,
}

/// What a poll of the reader gave.
enum Polled<'a> {
    Record(BorrowedMessage<'a>),
    /// The fetch position reached the end of the log.
    End,
    Nothing,
}

impl PartitionReader {
    /// A reader on `base` (no group, no commits).
    pub fn new(base: &ClientConfig) -> Result<Self, KafkaError> {
        let consumer = super::consumer_config(base)
            .set("group.id", "neonblue-restore")
            .set("enable.auto.commit", "false")
            // The end of a log is where a fetch says it is (see
            // `log_bounds`): its high watermark, as the logs read here
            // (changelogs, checkpoints) are written without transactions.
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_uncommitted")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", super::SHORT_READ_FETCH_WAIT_MS)
            .set("fetch.max.bytes", "52428800")
            .create_with_context(super::ReadToEnd)?;
        Ok(PartitionReader { consumer })
    }

    /// (start, end) of a partition's log. The end is confirmed by a fetch:
    /// some brokers (Tansu among them) answer ListOffsets with the first
    /// offset of the last batch, plus one, which would cut that batch off.
    pub fn log_bounds(&self, topic: &str, partition: i32) -> Result<(i64, i64), KafkaError> {
        let (low, listed) = self
            .consumer
            .fetch_watermarks(topic, partition, ADMIN_TIMEOUT)?;
        // From the last record ListOffsets knows of: the first fetch
        // response carries the end, with data or with the partition's EOF
        // (`None` only while no response came, or a failed one came since).
        let mut answered = false;
        let mut end = listed;
        self.scan(topic, partition, (listed - 1).max(low), |polled| {
            answered |= !matches!(polled, Polled::Nothing);
            if !answered {
                return false;
            }
            match super::fetched_log_end(self.consumer.client(), topic, partition) {
                Some(fetched) => {
                    end = end.max(fetched);
                    true
                }
                None => false,
            }
        })?;
        Ok((low, end))
    }

    /// Calls `f(offset, record)` for every record in `[from, to)`; a missing
    /// value is a tombstone. Compacted-away offsets are simply absent, and
    /// the read ends early where the log does (a `to` past its end).
    pub fn read(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
        mut f: impl FnMut(i64, ChangeRecord),
    ) -> Result<u64, KafkaError> {
        if from >= to {
            return Ok(0);
        }
        let mut n = 0;
        self.scan(topic, partition, from, |polled| match polled {
            Polled::Record(m) if m.offset() < from => false,
            Polled::Record(m) if m.offset() >= to => true,
            Polled::Record(m) => {
                let record = ChangeRecord {
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().map(|p| p.to_vec()),
                };
                f(m.offset(), record);
                n += 1;
                m.offset() + 1 >= to
            }
            Polled::End => true,
            Polled::Nothing => false,
        })?;
        Ok(n)
    }

    /// The last record of a partition (`None` when empty), e.g. a checkpoint.
    pub fn read_last(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Option<(i64, ChangeRecord)>, KafkaError> {
        let (low, high) = self.log_bounds(topic, partition)?;
        if high <= low {
            return Ok(None);
        }
        // The last offset may have been compacted away: look back a little.
        let mut from = (high - 1).max(low);
        loop {
            let mut last = None;
            self.read(topic, partition, from, high, |o, r| last = Some((o, r)))?;
            if last.is_some() || from == low {
                return Ok(last);
            }
            from = (from - 64).max(low);
        }
    }

    /// The timestamp (ms since the epoch) of the record at `offset`; `None`
    /// when there is none (compacted away, a transaction marker, past the
    /// end) or it has no time. `offset` must not be past the log's end
    /// (a broker may then send nothing, not even an EOF).
    pub fn timestamp_at(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<i64>, KafkaError> {
        let mut found = None;
        self.scan(topic, partition, offset, |polled| match polled {
            Polled::Record(m) => {
                if m.offset() == offset {
                    found = m.timestamp().to_millis();
                }
                m.offset() >= offset
            }
            Polled::End => true,
            Polled::Nothing => false,
        })?;
        Ok(found)
    }

    /// Reads the partition from `from` until `done` says so, then gives it
    /// up. An error a broker recovers from (a connection lost, a leader
    /// moving) is retried until nothing has arrived for [`ADMIN_TIMEOUT`];
    /// any other (a record that cannot be read, no authorisation) fails
    /// the read at once, as skipping past it would lose records.
    fn scan(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        mut done: impl FnMut(Polled) -> bool,
    ) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(from))?;
        self.consumer.assign(&tpl)?;
        let failed = |problem: String| KafkaError::Topic {
            topic: topic.to_string(),
            problem: format!("partition {partition}, reading from offset {from}: {problem}"),
        };
        let mut last_progress = Instant::now();
        let mut retried = None;
        let result = loop {
            let polled = match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    retried = None;
                    Polled::Record(m)
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => Polled::End,
                Some(Err(e)) if is_transient(&e) => {
                    tracing::warn!(topic, partition, error = %e, "reading a partition (retried)");
                    retried = Some(e);
                    Polled::Nothing
                }
                Some(Err(e)) => break Err(failed(e.to_string())),
                None => Polled::Nothing,
            };
            if done(polled) {
                break Ok(());
            }
            if last_progress.elapsed() > ADMIN_TIMEOUT {
                let why = retried.map_or("no answer".to_string(), |e| e.to_string());
                break Err(failed(format!("{why}, for {ADMIN_TIMEOUT:?}")));
            }
        };
        let unassigned = self.consumer.unassign();
        result?;
        Ok(unassigned?)
    }
}

/// Errors of a consumer that librdkafka recovers from by itself.
fn is_transient(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        e.rdkafka_error_code(),
        Some(
            Code::AllBrokersDown
                | Code::BrokerTransportFailure
                | Code::Resolve
                | Code::OperationTimedOut
                | Code::RequestTimedOut
                | Code::NetworkException
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
                | Code::BrokerNotAvailable
        )
    )
}
