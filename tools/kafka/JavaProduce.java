// Produces one record per key with the Java client's default partitioner and prints "KEY<TAB>PARTITION" per record.
// The tests run it (Java source-file mode, on the broker's own kafka-clients jar) to check that hule-events puts a
// key on the partition a Java (or Python: both use murmur2) producer chooses:
//   java -cp "$(scripts/kafka.sh classpath)" tools/kafka/JavaProduce.java BOOTSTRAP TOPIC KEY...
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

public class JavaProduce {
    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: JavaProduce BOOTSTRAP TOPIC KEY...");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("acks", "all");
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            for (int i = 2; i < args.length; i++) {
                RecordMetadata m = producer.send(new ProducerRecord<>(args[1], args[i], "java")).get();
                System.out.println(args[i] + "\t" + m.partition());
            }
        }
    }
}
