//! Benchmark baseline for Kafka mode: the bare repartition round trip,
//! with no parsing, joining or committing. One consumer reads a topic from
//! its beginning and, for every record, produces `--bytes` bytes to a fresh
//! topic of as many partitions (keyed by the record's key, with the
//! producer settings neonblue uses for its repartition topic) while reading
//! that topic back, until every record read has come back and no more come
//! (at least the topic's size when the run starts, counted in offsets: a
//! topic with offset gaps, such as transaction markers, would stall it).
//! Built only with `--features bench` (see `scripts/bench/kafka.py`).
//!
//!     neonblue-bench-kafka --brokers HOST:PORT --topic TOPIC [--bytes B]
//!
//! Prints "N records back in S s: R records/s", S from the first record
//! read to the last one back. The topic it creates,
//! `TOPIC-bare-round-trip-PID`, is deleted at the end (a killed run leaves
//! it behind).

use anyhow::{bail, Context, Result};
use neonblue::config::KafkaConfig;
use neonblue::drivers::kafka::group::round_trip_consumer_config;
use neonblue::generate::Rng;
use neonblue_topology::kafka::{admin, ChangelogProducer, PartitionReader, TopicSpec};
use neonblue_topology::partition_for_key;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Bytes produced per record by default: neonblue's mean repartition record
/// on the generated bench records (249 bytes).
const DEFAULT_BYTES: usize = 250;
/// The last bytes of each produced record are pseudo-random, the rest is the
/// start of the input record: so that batches compress like neonblue's
/// repartition records (zlib level 1 over batches of 100, as a stand-in for
/// the producer's lz4: 4.25× against their 4.30×; the input's first 250
/// bytes alone, 10.3×).
const RANDOM_TAIL: usize = 32;
/// How long the round trip may go without a record before it gives up.
const STALL: Duration = Duration::from_secs(60);
/// How long no record may come before the round trip counts as done.
const QUIET: Duration = Duration::from_secs(1);

/// The same allocator as `neonblue` (see src/main.rs), so that the baseline
/// runs on the same allocation path.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    brokers: String,
    topic: String,
    bytes: usize,
}

fn parse_args() -> Result<Args> {
    const USAGE: &str = "usage: neonblue-bench-kafka --brokers HOST:PORT --topic TOPIC [--bytes B]";
    let mut args = std::env::args().skip(1);
    let (mut brokers, mut topic, mut bytes) = (None, None, DEFAULT_BYTES);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--topic" => topic = Some(value()?),
            "--bytes" => bytes = value()?.parse().context("--bytes")?,
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    Ok(Args {
        brokers: brokers.context(USAGE)?,
        topic: topic.context(USAGE)?,
        bytes,
    })
}

fn main() {
    if let Err(e) = parse_args().and_then(|a| round_trip(&a)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// A topic deleted when dropped.
struct TempTopic<'a> {
    base: &'a ClientConfig,
    name: String,
}

impl Drop for TempTopic<'_> {
    fn drop(&mut self) {
        if let Err(e) = admin::delete_topics(self.base, std::slice::from_ref(&self.name)) {
            eprintln!("cannot delete topic {}: {e}", self.name);
        }
    }
}

fn round_trip(a: &Args) -> Result<()> {
    let mut base = ClientConfig::new();
    base.set("bootstrap.servers", &a.brokers);
    let topics = admin::topic_partitions(&base)?;
    let partitions = *topics
        .get(&a.topic)
        .with_context(|| format!("no topic {}", a.topic))?;
    let name = format!("{}-bare-round-trip-{}", a.topic, std::process::id());
    if topics.contains_key(&name) {
        bail!("topic {name} exists (left by a killed run?): delete it first");
    }
    let back = TempTopic { base: &base, name };
    admin::ensure_topics(
        &base,
        1,
        &[TopicSpec {
            name: back.name.clone(),
            partitions,
            compacted: false,
        }],
    )?;
    let (returned, seconds) = measure(a, &base, &back.name, partitions)?;
    println!(
        "{returned} records back in {seconds:.3} s: {:.0} records/s",
        returned as f64 / seconds
    );
    Ok(())
}

/// Runs the round trip; returns the records back and the seconds taken.
/// Deliveries are awaited every `commit_records` records sent, as
/// neonblue's commits await them.
fn measure(a: &Args, base: &ClientConfig, back: &str, partitions: i32) -> Result<(u64, f64)> {
    let producer = ChangelogProducer::new(base)?;
    let consumer: BaseConsumer = round_trip_consumer_config(base)
        .set("group.id", format!("{back}-reader"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut expected = 0u64;
    let mut assignment = TopicPartitionList::new();
    let reader = PartitionReader::new(base)?;
    for p in 0..partitions {
        let (low, high) = reader.log_bounds(&a.topic, p)?;
        expected += (high - low).max(0) as u64;
        assignment.add_partition_offset(&a.topic, p, Offset::Offset(low))?;
        assignment.add_partition_offset(back, p, Offset::Beginning)?;
    }
    if expected == 0 {
        bail!("topic {} is empty", a.topic);
    }
    consumer.assign(&assignment)?;
    let await_every = KafkaConfig::default().commit_records as usize;
    let mut inflight = Vec::new();
    let (mut read, mut returned, mut start, mut end) = (0u64, 0u64, None, None);
    let mut last_record = Instant::now();
    let mut value = Vec::with_capacity(a.bytes);
    loop {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            // Done once everything read is back and nothing more comes.
            if read >= expected && returned >= read && last_record.elapsed() > QUIET {
                break;
            }
            if last_record.elapsed() > STALL {
                bail!(
                    "no record for {STALL:?}: {read} of {expected} read, {returned} back (a topic with offset gaps, or a failed delivery?)"
                );
            }
            continue;
        };
        let m = m?;
        last_record = Instant::now();
        if m.topic() == back {
            returned += 1;
            end = Some(last_record);
            continue;
        }
        start.get_or_insert(last_record);
        read += 1;
        let key = m.key().unwrap_or_default();
        fill(&mut value, m.payload().unwrap_or_default(), a.bytes, read);
        let record = FutureRecord::<[u8], [u8]>::to(back)
            .partition(partition_for_key(key, partitions as u32) as i32)
            .key(key)
            .payload(&value);
        inflight.push(producer.send_record(record)?);
        if inflight.len() >= await_every {
            ChangelogProducer::await_all(std::mem::take(&mut inflight))?;
        }
    }
    let seconds = match (start, end) {
        (Some(start), Some(end)) => (end - start).as_secs_f64(),
        _ => 0.0,
    };
    ChangelogProducer::await_all(inflight)?;
    Ok((returned, seconds))
}

/// `bytes` bytes: the start of `input`, then pseudo-random bytes drawn from
/// `seed` up to `bytes` (at least [`RANDOM_TAIL`], or `bytes` if fewer).
fn fill(value: &mut Vec<u8>, input: &[u8], bytes: usize, seed: u64) {
    let tail = RANDOM_TAIL.min(bytes);
    value.clear();
    value.extend_from_slice(&input[..input.len().min(bytes - tail)]);
    let mut rng = Rng::new(seed);
    while value.len() < bytes {
        let room = (bytes - value.len()).min(8);
        value.extend_from_slice(&rng.next_u64().to_le_bytes()[..room]);
    }
}
