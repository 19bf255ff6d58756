#!/usr/bin/env ruby
# Generates tests/data/ruby_differential.jsonl: expressions over generated records, with what
# Ruby (3.1) gives for each (`inspect` of the result, or "!ExceptionClass"). The test
# tests/ruby_differential.rs replays them through ferrentd's evaluator; Ruby is only needed to
# regenerate the file:  ruby scripts/gen-ruby-differential.rb > tests/data/ruby_differential.jsonl
require 'json'
require 'time'
require 'ipaddr'

rng = Random.new(20261129)
WORDS = %w[alpha Beta gamma DELTA web-01 api_v2 foo.bar a\ b\ c 12abc 0x1f café hello\ world x,y,z 42 -7 3.5 /var/log/app.log]

def pick(rng, a) = a[rng.rand(a.size)]

def gen_record(rng)
  r = {}
  r['name'] = pick(rng, WORDS)
  r['msg'] = Array.new(rng.rand(1..4)) { pick(rng, WORDS) }.join(pick(rng, [' ', '  ', ',', "\t"]))
  r['code'] = pick(rng, [200, 404, 500, 503, '200', '503', nil, 0, -1])
  r['n'] = pick(rng, [0, 1, 7, 42, -13, 1000, 123456789, '21', '3.5', nil])
  r['f'] = pick(rng, [0.5, 1.25, -2.75, 3.0, 1e-5, 123.456, 2.5, 1e16, nil])
  r['flag'] = pick(rng, [true, false, nil])
  r['list'] = Array.new(rng.rand(0..5)) { pick(rng, [1, 2, 3, 5, 8, 13, -1, 0]) }
  r['tags'] = Array.new(rng.rand(0..3)) { pick(rng, WORDS) }
  r['nested'] = pick(rng, [{ 'a' => { 'b' => pick(rng, WORDS) } }, { 'a' => 1 }, {}, nil])
  r['ts'] = pick(rng, [1700000000, 1718000000, 0, 946684800, 1700000000.5])
  r['ip'] = pick(rng, ['10.0.0.1', '::1', 'fd00::1', 'not-an-ip', '192.168.1.10'])
  r.delete(pick(rng, %w[name msg code n f flag nested])) if rng.rand < 0.3
  r
end

S_FIELDS = %w[name msg code n f flag nested missing]
STRS = ["'-'", "','", "' '", "'x'", "'a'", "''", "'_'"]
INTS = %w[1 2 3 7 10 -4]

TEMPLATES = [
  'record[F]', 'record[F].to_s', 'record[F].to_i * I', 'record[F].to_f / I', 'record[F].to_s.upcase',
  'record[F].to_s.downcase', 'record[F].to_s.capitalize', 'record[F].to_s.strip', 'record[F].to_s.length',
  'record[F].to_s.reverse', 'record[F].to_s.split(S)', 'record[F].to_s.split', 'record[F].to_s.split(/[,\s]+/)',
  "record[F].to_s.gsub(/[aeiou]/, S)", 'record[F].to_s.sub(/(\w+)/) { $1.upcase }', 'record[F].to_s.scan(/\d+/)',
  'record[F].to_s[0, I]', 'record[F].to_s[1..]', 'record[F].to_s[-2..]', 'record[F].to_s =~ /a/',
  'record[F].to_s.include?(S)', 'record[F].to_s.start_with?(S)', 'record[F].to_s.end_with?(S)',
  'record[F].nil? ? S : record[F]', 'record[F] || S', 'record[F] && record[F].to_s',
  'record.keys.sort', 'record.keys.size', "record.dig('nested', 'a', 'b')", 'record.dig(F)',
  'record.select { |k, v| v.is_a?(Integer) }', 'record.reject { |k, v| v.nil? }.keys',
  'record.map { |k, v| k.upcase }', 'record.to_a.first', 'record.values.compact.size',
  'record.merge({S => I})', 'record.fetch(F, S)', 'record.key?(F)',
  'record.each_with_object({}) { |(k, v), h| h[k] = v.class.name }', 'record.sort_by { |k, v| k }.first',
  "record[F].is_a?(String) ? record[F].tr('a-y', 'b-z') : record[F].inspect", '(record[F].to_i + I) % I',
  'record[F].to_i.fdiv(I)', 'record[F].to_f.round(2)', 'record[F].to_i ** 2',
  "'%05d|%-6s|%.3f' % [record[F].to_i, record[F].to_s[0, 4], record[F].to_f]", "format('%x', record[F].to_i.abs)",
  "case record[F] when Integer then 'int' when String then 'str' when nil then 'nil' else 'other' end",
  'record[F].to_s.chars.uniq.sort.join', '[record[F], record[F]].compact.join(S)', 'record.to_json',
  "record['list'].map { |x| x.to_s * 2 }", "record['list'].sum", "record['list'].max", "record['list'].sort.reverse",
  "record['list'].each_slice(2).to_a", "record['list'].group_by(&:odd?)", "record['list'].inject(:+)",
  "record['list'].tally", "record['list'].zip(record['tags'])", "record['list'].select(&:even?).map { |x| x * I }",
  "record['list'].each_with_index.map { |x, i| x * i }", "record['list'].minmax", "record['list'].uniq.size",
  "record['tags'].map(&:downcase).join(S)", "record['tags'].find { |t| t.include?('a') }", "record['tags'].any? { |t| t =~ /\d/ }",
  "Time.at(record['ts']).utc.iso8601", "Time.at(record['ts'].to_i).utc.strftime('%Y/%m/%d %H:%M:%S %a %b %j')",
  "Time.at(record['ts']).utc.strftime('%s %L %e %-m %I%p')", "Time.at(record['ts']).utc.year + I",
  "Time.at(record['ts']).utc.iso8601(3)", "(Time.at(record['ts']) + I).to_i",
  "IPAddr.new(record['ip']).ipv6? rescue 'bad'", "IPAddr.new(record['ip']).to_s rescue $!.class.name",
  'I / I', '-I / I', 'I % -I', 'I.to_f / I', '(I * 1.1).round(3)', '10.0 / 3', '0.1 + 0.2', '2 ** 0.5',
  'I.to_s.rjust(6, S)', 'I.to_s.center(7, S)', 'I.abs.to_s(2)', 'I.divmod(3)', 'I.to_f.floor(1)', '(I * 2.5).ceil',
  "record[F].to_s.match(/(\w)(\w)/)&.captures", "record[F].to_s.match?(/\d/)", "record[F].to_s.squeeze",
  "record[F].to_s.count('aeiou')", "record[F].to_s.delete('aeiou')", "record[F].to_s.index('a')",
  "record[F].to_s.partition(S)", "record[F].to_s.each_char.to_a.size rescue 0", "record[F].to_s.succ",
  "record[F].to_s.ljust(I.abs + 3, '.')", "record[F].to_s * (I.abs % 3)", "record[F].to_s.sub('a', '\\\\0\\\\0')",
  "record[F].to_s.gsub(/(?<l>[a-z])(\d)/, '\\\\k<l>-\\\\2')", "record[F].to_s.gsub(/o/) { |m| m.upcase }",
  "Integer(record[F]) rescue 'no'", "Float(record[F]) rescue 'no'", "record[F].to_s.to_sym",
  "record[F].to_s.empty? ? nil : record[F].to_s[0]", "!record[F]", "record[F].nil? || record[F] == ''",
  "[1, 'a', nil, 2.5, :s, [1], {'k' => 'v'}].inspect", "{a: 1, 'b' => [nil, true]}", "(1..I.abs).to_a",
  "(1...I.abs).map { |i| i * i }", "('a'..'e').to_a.join", "[3, 1, 2].sort { |a, b| b <=> a }",
  "record['list'].each_with_object([]) { |x, acc| acc << x if x > 1 }", "record['list'].partition(&:positive?)",
  "record['list'].take_while { |x| x < 5 }", "record['list'].flat_map { |x| [x, x] }.first(3)",
  "x = record[F]; y = x.to_s; y.size > 2 ? y : 'short'", "begin; Integer(record[F].to_s); rescue ArgumentError => e; e.class.name; end",
  "record.transform_values { |v| v.to_s }.values.join('|')", "record.min_by { |k, v| k }", "record.count { |k, v| v }",
  "record.sum { |k, v| v.is_a?(Integer) ? v : 0 }", "record.to_a.flatten.size", "record.invert.keys.size",
]

def fill(rng, t)
  t.gsub(/(?<![A-Za-z_%])F(?![A-Za-z_])/) { "'#{pick(rng, S_FIELDS)}'" }
   .gsub(/(?<![A-Za-z_%])S(?![A-Za-z_])/) { pick(rng, STRS) }
   .gsub(/(?<![A-Za-z_%])I(?![A-Za-z_%])/) { pick(rng, INTS) }
end

def run(record, expr)
  eval(expr)
end

seen = {}
out = []
400.times do |i|
  t = TEMPLATES[i % TEMPLATES.size]
  expr = fill(rng, t)
  record = gen_record(rng)
  key = [expr, record]
  next if seen[key]
  seen[key] = true
  res = begin
    run(JSON.parse(JSON.generate(record)), expr).inspect
  rescue StandardError => e
    "!#{e.class.name}"
  end
  out << JSON.generate({ 'expr' => expr, 'record' => record, 'out' => res })
end
puts out
