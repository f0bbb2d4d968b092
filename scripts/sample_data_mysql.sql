-- Sample MariaDB/MySQL database `shop_my` for scripts/demo: two tables of mixed types,
-- ~20k rows, filled deterministically from MariaDB's sequence engine (seq_1_to_N).
-- Re-running it starts from scratch.
--
--   mariadb -h 127.0.0.1 -P 53306 -u root < scripts/sample_data_mysql.sql
--
-- customers: 4 000 rows; orders: 16 000 rows.
DROP DATABASE IF EXISTS shop_my;
CREATE DATABASE shop_my DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE shop_my;

CREATE TABLE customers (
  id          INT UNSIGNED NOT NULL PRIMARY KEY,
  name        VARCHAR(80) NOT NULL,
  email       VARCHAR(120) NOT NULL UNIQUE,
  tier        ENUM('free', 'silver', 'gold') NOT NULL,
  profile     JSON,
  newsletter  TINYINT(1) NOT NULL,
  balance     DECIMAL(12, 2) NOT NULL,
  created_at  DATETIME(6) NOT NULL
);

CREATE TABLE orders (
  id           BIGINT NOT NULL PRIMARY KEY,
  customer_id  INT UNSIGNED NOT NULL,
  status       ENUM('pending', 'paid', 'shipped', 'delivered', 'cancelled') NOT NULL,
  total        DECIMAL(12, 2) NOT NULL,
  weight_kg    DOUBLE,
  order_date   DATE NOT NULL,
  slot         TIME,
  token        VARBINARY(16),
  note         TEXT,
  updated_at   TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY (customer_id)
);

INSERT INTO customers
SELECT seq,
       CONCAT(ELT(1 + seq % 8, 'Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret', 'Dennis', 'Frances'),
              ' ', ELT(1 + seq % 6, 'Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Thompson', 'Hamilton'),
              ' #', seq),
       CONCAT('user', seq, '@example.com'),
       ELT(1 + seq % 3, 'free', 'silver', 'gold'),
       JSON_OBJECT('city', ELT(1 + seq % 4, 'Lisbon', 'Oslo', 'Quito', 'Osaka'),
                   'zip', LPAD(seq * 37 % 100000, 5, '0'), 'vip', seq % 5 = 0),
       seq % 2,
       (seq * 7919 % 1000000) / 100,
       TIMESTAMP '2023-01-01 00:00:00' + INTERVAL seq * 2833 SECOND + INTERVAL seq % 1000 MICROSECOND
FROM seq_1_to_4000;

INSERT INTO orders (id, customer_id, status, total, weight_kg, order_date, slot, token, note, updated_at)
SELECT seq,
       1 + seq * 7 % 4000,
       ELT(1 + seq % 5, 'pending', 'paid', 'shipped', 'delivered', 'cancelled'),
       (seq * 104729 % 5000000) / 100,
       CASE WHEN seq % 6 = 0 THEN NULL ELSE (seq % 997) / 10.0 END,
       DATE '2024-01-01' + INTERVAL (seq % 700) DAY,
       CASE WHEN seq % 4 = 0 THEN NULL ELSE SEC_TO_TIME(28800 + (seq % 40) * 900) END,
       UNHEX(MD5(seq)),
       CASE WHEN seq % 9 = 0 THEN 'leave at the door, ring twice' END,
       TIMESTAMP '2024-06-01 00:00:00' + INTERVAL seq MINUTE
FROM seq_1_to_16000;

SELECT 'shop_my.customers' AS `table`, COUNT(*) AS `rows` FROM customers
UNION ALL SELECT 'shop_my.orders', COUNT(*) FROM orders;
