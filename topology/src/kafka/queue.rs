//! Reading partitions from queues of their own, beside the consumer's.
//!
//! A partition split off the consumer's queue is read only when its own
//! queue is polled. Not polling it holds the partition back: librdkafka
//! stops fetching for it once the queue holds about
//! `queued.max.messages.kbytes` (or `queued.min.messages` records) and keeps
//! what it fetched until the next rebalance. (Pausing the partition instead
//! drops its fetched records, to be fetched and decompressed again on
//! resume.)

use super::KafkaError;
use rdkafka::bindings as rd;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::sync::Arc;
use std::thread::Thread;

/// Partitions read from queues of their own, each of which can be held back.
pub struct PartitionQueues<C: ConsumerContext + 'static> {
    queues: Vec<PartitionQueue<C>>,
    held: Vec<bool>,
}

impl<C: ConsumerContext + 'static> PartitionQueues<C> {
    /// Splits the queue of each of `partitions` off `consumer`. Call it
    /// before the consumer's first poll, so that none of their records
    /// waits in the consumer's queue; the split lasts across rebalances.
    /// A queue turning non-empty unparks `reader`.
    pub fn split(
        consumer: &Arc<BaseConsumer<C>>,
        partitions: &[(String, i32)],
        reader: &Thread,
    ) -> Result<Self, KafkaError> {
        let mut queues = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let (topic, partition) = (topic.as_str(), *partition);
            let mut queue = consumer
                .split_partition_queue(topic, partition)
                .ok_or_else(|| KafkaError::Topic {
                    topic: topic.to_string(),
                    problem: format!(
                        "partition {partition} cannot be read from a queue of its own"
                    ),
                })?;
            let reader = reader.clone();
            queue.set_nonempty_callback(move || reader.unpark());
            queues.push(queue);
        }
        let held = vec![false; queues.len()];
        Ok(PartitionQueues { queues, held })
    }

    /// Holds back (or releases) the partition at `index` of the list given
    /// to [`PartitionQueues::split`].
    pub fn hold(&mut self, index: usize, held: bool) {
        if let Some(h) = self.held.get_mut(index) {
            *h = held;
        }
    }

    /// The queues to read: those not held back.
    pub fn readable(&self) -> impl Iterator<Item = &PartitionQueue<C>> {
        self.queues
            .iter()
            .zip(&self.held)
            .filter(|(_, held)| !**held)
            .map(|(q, _)| q)
    }
}

/// How many events wait in the consumer's own queue: records of partitions
/// not split off, errors, the group's events and logs. `BaseConsumer::poll`
/// returns `None` both when that queue is empty and when it served an event
/// that is not a record; this tells the two apart.
pub fn queued_events<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> usize {
    // SAFETY: the client pointer is valid for the consumer's lifetime; the
    // queue handle is checked for NULL and destroyed before returning.
    unsafe {
        let queue = rd::rd_kafka_queue_get_consumer(consumer.client().native_ptr());
        if queue.is_null() {
            return 0;
        }
        let n = rd::rd_kafka_queue_length(queue);
        rd::rd_kafka_queue_destroy(queue);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Message;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::ClientConfig;
    use std::time::{Duration, Instant};

    /// (partition, payload) of every record read from the consumer's queue
    /// and the readable split queues until `want` arrived or `limit` passed.
    fn read(
        consumer: &BaseConsumer,
        queues: &PartitionQueues<rdkafka::consumer::DefaultConsumerContext>,
        want: usize,
        limit: Duration,
    ) -> Vec<(i32, String)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + limit;
        while got.len() < want && Instant::now() < deadline {
            let polled = std::iter::once(consumer.poll(Duration::from_millis(50)))
                .chain(queues.readable().map(|q| q.poll(Duration::ZERO)));
            for m in polled.flatten().flatten() {
                let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into();
                got.push((m.partition(), payload));
            }
        }
        got
    }

    #[test]
    fn a_held_partition_is_read_only_once_released_whole_and_in_order() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 2, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for i in 0..10 {
            for p in 0..2 {
                let payload = format!("{p}-{i}");
                let record = BaseRecord::<(), str>::to("t")
                    .partition(p)
                    .payload(&payload);
                producer.send(record).map_err(|(e, _)| e).unwrap();
            }
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let consumer: Arc<BaseConsumer> = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .set("group.id", "g")
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .create()
                .unwrap(),
        );
        let mut queues =
            PartitionQueues::split(&consumer, &[("t".to_string(), 0)], &std::thread::current())
                .unwrap();
        consumer.subscribe(&["t"]).unwrap();
        queues.hold(0, true);
        let limit = Duration::from_secs(20);
        let before = read(&consumer, &queues, 10, limit);
        let of = |p: i32| (0..10).map(move |i| (p, format!("{p}-{i}")));
        assert_eq!(
            before,
            of(1).collect::<Vec<_>>(),
            "only partition 1 is read"
        );
        let more = read(&consumer, &queues, 1, Duration::from_secs(1));
        assert_eq!(more, vec![], "partition 0 is held back");

        queues.hold(0, false);
        let after = read(&consumer, &queues, 10, limit);
        assert_eq!(
            after,
            of(0).collect::<Vec<_>>(),
            "partition 0, whole and in order"
        );
    }

    /// librdkafka's logs are events in the consumer's queue: a poll serves
    /// one and returns `None`, as for an empty queue; only `queued_events`
    /// tells the two apart.
    #[test]
    fn queued_events_counts_what_a_poll_serves_without_returning_it() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "g")
            .set("debug", "cgrp,topic")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug)
            .create()
            .unwrap();
        consumer.subscribe(&["t"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while queued_events(&consumer) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(queued_events(&consumer) > 0, "no log arrived");
        assert!(
            consumer.poll(Duration::ZERO).is_none(),
            "a log is no record"
        );
    }
}
