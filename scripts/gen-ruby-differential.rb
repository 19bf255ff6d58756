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

# Enumerators (iterators called without a block) and Integers beyond 64 bits: fixed
# expressions, each over a record from a second generator (the cases above stay as they were).
EXTRA = [
  # Enumerator
  "record['list'].each", "record['list'].map", "record['tags'].each_with_index", "record['list'].each_slice(2)",
  "record['list'].each.with_index(1).to_a", "record['list'].map.with_index { |x, i| x * i }",
  "record['list'].map.with_index(1) { |x, i| [i, x] }", "record['list'].each_with_index.map { |x, i| x - i }",
  "record['list'].each_with_index.to_a", "record['list'].select.with_index { |x, i| i.even? }",
  "record['list'].reject.with_index { |x, i| i.odd? }", "record['list'].each_slice(2).map(&:sum)",
  "record['list'].each_slice(3).to_a", "record['list'].each_cons(2).to_a.size",
  "record['list'].each_slice(2).with_index.map { |s, i| s.sum * i }", "record['tags'].each_with_index.to_h",
  "record['list'].each.size", "record['list'].map.size", "record['list'].each_slice(2).size",
  "record['list'].find.size", "record['list'].each_with_index.count", "record['list'].each.next rescue $!.class.name",
  "e = record['list'].each; [e.next, e.next] rescue $!.message", "record['msg'].to_s.each_char.first(3)",
  "record['msg'].to_s.each_char.with_index.select { |c, i| i < 3 }.map(&:first).join",
  "record['msg'].to_s.each_char.to_a.size", "record['msg'].to_s.each_char.size",
  "record['name'].to_s.each_char.with_index.map { |c, i| i.even? ? c.upcase : c }.join",
  "record['name'].to_s.chars.each_slice(2).map(&:join)", "record['name'].to_s.each_char",
  "3.times.map { |i| i * 10 }", "3.times", "3.times.to_a", "4.times.select(&:even?)", "1.upto(4).to_a",
  "5.downto(2).map { |i| i * 2 }", "1.upto(3)", "3.times.with_index(5).to_a",
  "record.each", "record.each_with_index.map { |(k, v), i| \"\#{i}:\#{k}\" }", "record.map.with_index { |(k, v), i| i }",
  "record.each_with_index.to_a.size", "record.select.with_index { |(k, v), i| i < 2 }.keys",
  "record.keys.each_with_index.select { |k, i| i.odd? }.map(&:first)", "record.each_key.to_a",
  "record['list'].each_with_object([]).each { |x, acc| acc << x * 2 }",
  "record['list'].each.with_object([]) { |x, acc| acc.unshift(x) }",
  "record['list'].each_with_object({}).to_a.size", "record['list'].map.with_index.to_a",
  "record['list'].map.each_with_index { |x, i| x + i }", "record['list'].each.with_index.with_index.to_a",
  "(1..4).each_slice(2).to_a", "(1..3).each", "(1..3).map.with_index(1).to_a", "('a'..'c').each_with_index.map { |s, i| s * (i + 1) }",
  "record['list'].sort_by.with_index { |x, i| -i }", "record['list'].group_by.with_index { |x, i| i % 2 }",
  "record['list'].flat_map.with_index { |x, i| [x] * (i % 3) }", "record['list'].min_by.with_index { |x, i| -i }",
  "record['list'].find.with_index { |x, i| x > 2 }", "record['list'].each_slice(2).include?([1, 2])",
  "record['list'].each_with_index.max_by { |x, i| x * 10 - i }", "record['list'].each.with_index(1).sum { |x, i| x * i }",
  "record['list'].each_with_index.inspect", "record['tags'].map.inspect", "[[1, 2], [3, 4]].each.with_index.map { |(a, b), i| a + b + i }",
  "x = 0; loop { x += 1; break x * 2 if x > 3 }",
  "e = [1, 2, 3].each; a = []; loop { a << e.next }; a", "loop", "record['list'].each_entry.to_a",
  "record['list'].filter_map.with_index { |x, i| x * 2 if i.even? }", "record['list'].each_slice(2).each_with_index.map { |s, i| s.size + i }",
  "record['list'].each.with_index(-1).map { |x, i| i }", "record['list'].partition.with_index { |x, i| i < 2 }",
  "%w[a b c].each_with_index.map { |s, i| s * i }.join(',')",
  "record['list'].each_with_index.select { |x, i| x > i }", "record['list'].each_with_index.sort_by { |x, i| [-x, i] }.map(&:last)",
  # Integers beyond 64 bits
  "2 ** 64", "2 ** 100", "-(2 ** 100)", "(2 ** 64).class", "(2 ** 64).inspect", "(2 ** 64).to_s(16)", "(2 ** 100).to_s(2).size",
  "2 ** 64 - 2 ** 64", "(2 ** 64 - 1) - 18446744073709551615", "9223372036854775807 + 1", "-9223372036854775808 - 1",
  "9223372036854775807 * 2", "-9223372036854775808 / -1", "(-9223372036854775808).abs", "-(-9223372036854775808)",
  "4611686018427387904 * 4", "3 ** 40", "(-3) ** 41", "7 ** 25 % 1000", "(2 ** 70) / 3", "(2 ** 70) / -3",
  "(-(2 ** 70)) / 3", "(2 ** 70) % 7", "(2 ** 70) % -7", "(-(2 ** 70)) % 7", "(2 ** 70).divmod(-9)",
  "(-(2 ** 70)).divmod(1000)", "(2 ** 70).remainder(-9)", "(2 ** 70).fdiv(2 ** 60)", "(2 ** 64) / 2 ** 60",
  "(2 ** 64) / (2 ** 64 + 1)", "1 << 64", "1 << 100", "(2 ** 100) >> 90", "(-(2 ** 100)) >> 3", "(2 ** 70) >> 200",
  "1 << -1", "(2 ** 64) & (2 ** 64 - 1)", "(2 ** 64) | 1", "(2 ** 64) ^ -1", "~(2 ** 64)", "(2 ** 64) == 2 ** 64",
  "(2 ** 64) == 18446744073709551616.0", "(2 ** 64) > 1.8e19", "(2 ** 64) < 1.9e19", "(2 ** 64) <=> 2 ** 63",
  "(2 ** 64) <=> 1.5", "2 ** 64 > 10", "-(2 ** 64) < -10", "(2 ** 64) + 0.5", "(2 ** 64) * 1.0", "(2 ** 64) - 1.5",
  "(2 ** 64) / 2.0", "(2 ** 64).to_f", "(2 ** 3000).to_f", "1.0 / 0 > 2 ** 100", "(2 ** 100) == 1.0 / 0",
  "9007199254740993 == 9007199254740992.0", "9007199254740993 > 9007199254740992.0", "1e20.to_i", "(1e20).floor",
  "(-1.5e19).round", "2.0 ** 70 == 2 ** 70", "[2 ** 64, 1, -(2 ** 65)].sort", "[2 ** 64, 1].max", "[2 ** 64, 1].sum",
  "[2 ** 64, 2 ** 64].uniq.size", "{2 ** 64 => 'a'}[2 ** 64]", "(2 ** 64).eql?(2 ** 64)", "(2 ** 64).eql?(1.8446744073709552e19)",
  "(2 ** 64).hash == (2 ** 64).hash", "(2 ** 64).is_a?(Integer)", "Integer === 2 ** 64", "(2 ** 64).even?", "(2 ** 64 + 1).odd?",
  "(2 ** 64).zero?", "(2 ** 64).positive?", "(-(2 ** 64)).negative?", "(2 ** 64).succ", "(2 ** 64).pred", "(2 ** 64).bit_length",
  "(-(2 ** 64)).bit_length", "(2 ** 64).digits.first(3)", "(2 ** 64).digits.size", "(2 ** 64).gcd(2 ** 40 * 3)",
  "(2 ** 40).lcm(3 ** 30)", "(10 ** 20).round(-19)", "(15 * 10 ** 18 + 5 * 10 ** 17).round(-18)", "(10 ** 20 + 1).floor(-2)",
  "(10 ** 20 + 1).ceil(-2)", "(2 ** 64).pow(2, 1000)", "(2 ** 64).coerce(1)", "(2 ** 64).to_i", "(2 ** 64).integer?",
  "'123456789012345678901234567890'.to_i", "'-123456789012345678901234567890xyz'.to_i", "'1_000_000_000_000_000_000_000'.to_i",
  "'ffffffffffffffffffffffff'.to_i(16)", "'ffffffffffffffffffffffff'.hex", "Integer('123456789012345678901234567890')",
  "Integer('0x' + 'f' * 20)", "Integer('-98765432109876543210')", "Float(2 ** 70)", "'%d' % (2 ** 70)", "'%x' % (2 ** 70)",
  "format('%030d', 2 ** 70)", "\"\#{2 ** 70}\"", "(2 ** 70).to_s.size", "[2 ** 70].to_json", "JSON.generate({'n' => 2 ** 70})",
  "JSON.parse('[18446744073709551615]')", "(2 ** 64).to_s.reverse", "(2 ** 64).to_s.chars.map(&:to_i).sum",
  "x = 1; 70.times { x *= 3 }; x", "(1..30).reduce(:*)", "(1..25).inject { |a, b| a * b } / (1..23).inject(:*)",
  "(2 ** 100 - 2 ** 100 + 5).class", "(2 ** 64) * 0", "(2 ** 64) ** 2", "(2 ** 64) ** 0", "1 ** (2 ** 64)",
  "(-1) ** (2 ** 64 + 1)", "(2 ** 64) ** 0.5", "4 ** 0.5", "record['n'].to_i * 2 ** 64", "record['n'].to_i + 2 ** 63",
  "record['ts'].to_i * 1_000_000_000 * 1_000_000_000", "(record['n'].to_i * 2 ** 64) / 2 ** 64 == record['n'].to_i",
  "(2 ** 64).to_s.rjust(25, '0')", "(2 ** 64) / 0 rescue $!.class.name", "(2 ** 64) % 0 rescue $!.message",
  "(2 ** 64).divmod(0.0) rescue $!.class.name", "'a' * (2 ** 64) rescue $!.class.name", "[1][2 ** 64] rescue $!.class.name",
  "(2 ** 64) + nil rescue $!.message", "(2 ** 64) + 'a' rescue $!.message", "(2 ** 64) < 'a' rescue $!.message",
  "(2 ** 64).chr rescue $!.class.name", "case 2 ** 64 when Integer then 'int' else 'other' end",
  "case 2 ** 64 when 0..(2 ** 65) then 'in' else 'out' end", "(2 ** 64).between?(1, 2 ** 65)", "(2 ** 64).clamp(1, 5)",
  "[3, 2 ** 64].min", "(2 ** 64).to_s(36)", "(2 ** 64).abs == 2 ** 64", "-(2 ** 64).abs",
]
erng = Random.new(20261130)
EXTRA.each do |expr|
  record = gen_record(erng)
  res = begin
    run(JSON.parse(JSON.generate(record)), expr).inspect
  rescue StandardError => e
    "!#{e.class.name}"
  end
  out << JSON.generate({ 'expr' => expr, 'record' => record, 'out' => res })
end
puts out
