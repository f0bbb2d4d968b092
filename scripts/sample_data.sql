-- Sample PostgreSQL schema `shop` for scripts/demo: a few tables of mixed types, filled
-- quickly and deterministically with generate_series. Re-running it starts from scratch.
--
--   psql -v ON_ERROR_STOP=1 -v customers=10000 -v products=1000 -v orders=100000 \
--        -h 127.0.0.1 -p 55432 -U postgres -d replicant -f scripts/sample_data.sql
--
-- The psql variables are optional; the defaults below give ~310k rows.
\set QUIET on
SET client_min_messages = warning;
\if :{?customers} \else \set customers 10000 \endif
\if :{?products} \else \set products 1000 \endif
\if :{?orders} \else \set orders 100000 \endif

DROP SCHEMA IF EXISTS shop CASCADE;
CREATE SCHEMA shop;

CREATE TYPE shop.order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled');

CREATE TABLE shop.customers (
  id          uuid PRIMARY KEY,
  name        text NOT NULL,
  email       text NOT NULL UNIQUE,
  profile     jsonb,
  created_at  timestamptz NOT NULL
);

CREATE TABLE shop.products (
  id          integer PRIMARY KEY,
  sku         text NOT NULL,
  name        text NOT NULL,
  price       numeric(10, 2) NOT NULL,
  tags        text[],
  thumbnail   bytea,
  active      boolean NOT NULL
);

CREATE TABLE shop.orders (
  id               bigint PRIMARY KEY,
  customer_id      uuid NOT NULL REFERENCES shop.customers(id),
  status           shop.order_status NOT NULL,
  total            numeric(12, 2) NOT NULL,
  order_date       date NOT NULL,
  delivery_window  interval,
  note             text
);

CREATE TABLE shop.order_items (
  order_id    bigint NOT NULL REFERENCES shop.orders(id),
  line        smallint NOT NULL,
  product_id  integer NOT NULL REFERENCES shop.products(id),
  quantity    integer NOT NULL,
  unit_price  numeric(10, 2) NOT NULL,
  PRIMARY KEY (order_id, line)
);

-- Deterministic "random" values: hashes of the row number.
INSERT INTO shop.customers
SELECT md5('customer' || i)::uuid,
       (ARRAY['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret', 'Dennis', 'Frances'])[1 + i % 8]
         || ' ' || (ARRAY['Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Thompson', 'Hamilton'])[1 + i % 6]
         || ' #' || i,
       'user' || i || '@example.com',
       jsonb_build_object(
         'tier', (ARRAY['free', 'silver', 'gold'])[1 + i % 3],
         'newsletter', i % 2 = 0,
         'address', jsonb_build_object('city', (ARRAY['Lisbon', 'Oslo', 'Quito', 'Osaka'])[1 + i % 4],
                                       'zip', lpad((i * 37 % 100000)::text, 5, '0')),
         'tags', CASE WHEN i % 5 = 0 THEN '["vip"]'::jsonb ELSE '[]'::jsonb END),
       timestamptz '2023-01-01 00:00:00+00' + i * interval '47 minutes 13 seconds'
FROM generate_series(1, :customers) AS i;

INSERT INTO shop.products
SELECT i,
       'SKU-' || lpad(i::text, 6, '0'),
       (ARRAY['Widget', 'Gadget', 'Gizmo', 'Doohickey', 'Sprocket'])[1 + i % 5] || ' ' || i,
       round((1 + (i * 7919 % 50000) / 100.0)::numeric, 2),
       CASE i % 5 WHEN 0 THEN ARRAY['home', 'kitchen'] WHEN 1 THEN ARRAY['garden']
                  WHEN 2 THEN ARRAY['tools', 'diy', 'sale'] WHEN 3 THEN ARRAY['toy''s', 'kids']
                  ELSE '{}'::text[] END,
       CASE WHEN i % 10 = 0 THEN NULL ELSE decode(md5('img' || i), 'hex') END,
       i % 7 <> 0
FROM generate_series(1, :products) AS i;

-- 1 to 4 items per order (2.5 on average); an order's total is the sum of its items.
CREATE TEMP TABLE items AS
SELECT o AS order_id, l::smallint AS line, p.id AS product_id, 1 + (o + l) % 4 AS quantity,
       p.price AS unit_price
FROM generate_series(1, :orders) AS o
CROSS JOIN LATERAL generate_series(1, 1 + (o % 4)) AS l
JOIN shop.products AS p ON p.id = 1 + (o * 31 + l * 17) % :products;

INSERT INTO shop.orders
SELECT i,
       md5('customer' || (1 + i * 7 % :customers))::uuid,
       (enum_range(NULL::shop.order_status))[1 + i % 5],
       t.total,
       date '2024-01-01' + (i % 700),
       CASE WHEN i % 4 = 0 THEN NULL ELSE make_interval(days => i % 5, hours => 2 + i % 6) END,
       CASE WHEN i % 9 = 0 THEN 'leave at the door, ring twice' END
FROM (SELECT order_id AS i, sum(quantity * unit_price) AS total FROM items GROUP BY 1) AS t
ORDER BY i;

INSERT INTO shop.order_items SELECT * FROM items ORDER BY order_id, line;

-- Changes to orders and customers carry the whole old row ("before" in the change events);
-- with the default identity PostgreSQL sends only the old key, when the key changes.
ALTER TABLE shop.orders REPLICA IDENTITY FULL;
ALTER TABLE shop.customers REPLICA IDENTITY FULL;

ANALYZE shop.customers, shop.products, shop.orders, shop.order_items;

\set QUIET off
SELECT 'shop.' || relname AS "table", n_live_tup AS "rows"
FROM pg_stat_user_tables WHERE schemaname = 'shop' ORDER BY relname;
