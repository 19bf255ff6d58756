use super::*;

fn host() -> Host {
    Host {
        hostname: "myhost".into(),
        worker_id: "0".into(),
        config: true,
    }
}

/// `inspect` of the result, or `!Class: message` of the error.
fn ev(src: &str) -> String {
    let p = match Program::compile(src, &[]) {
        Ok(p) => p,
        Err(e) => return format!("compile error: {}", e.message),
    };
    match p.run(&host(), Vec::new(), Budget::EVENT) {
        Ok(v) => String::from_utf8_lossy(&value::inspect(&v)).into_owned(),
        Err(e) if e.aborted => format!("!abort: {}", e.message),
        Err(e) => format!("!{}: {}", e.class, e.message),
    }
}

#[test]
fn basics() {
    assert_eq!(ev("1 + 2"), "3");
    assert_eq!(ev("7 / 2"), "3");
    assert_eq!(ev("-7 / 2"), "-4");
    assert_eq!(ev("7 % -3"), "-2");
    assert_eq!(ev("7.0 / 2"), "3.5");
    assert_eq!(ev("1 / 0"), "!ZeroDivisionError: divided by 0");
    assert_eq!(ev("'a b  c'.gsub(/\\s+/, '-')"), "\"a-b-c\"");
    assert_eq!(ev("%w[a b c].join('|')"), "\"a|b|c\"");
    assert_eq!(ev("{'a' => 1, b: [1, nil]}"), "{\"a\"=>1, :b=>[1, nil]}");
    assert_eq!(ev("x = 5; x > 3 ? 'big' : 'small'"), "\"big\"");
    assert_eq!(
        ev("case 250 when 200..299 then 'ok' else 'no' end"),
        "\"ok\""
    );
    assert_eq!(
        ev("begin; Integer('12abc'); rescue ArgumentError, TypeError; -1; end"),
        "-1"
    );
    assert_eq!(
        ev("begin; ENV.fetch('NOT_SET_X_Y'); rescue KeyError => e; e.class.name; end"),
        "\"KeyError\""
    );
    assert_eq!(ev("[1,2,3].map { |x| x * 2 }"), "[2, 4, 6]");
    assert_eq!(
        ev("[1,2,3].each_with_object({}) { |x, h| h[x] = x.to_s }"),
        "{1=>\"1\", 2=>\"2\", 3=>\"3\"}"
    );
    assert_eq!(ev("'x,y,z'.split(',').last"), "\"z\"");
    assert_eq!(ev("'abc'[1..]"), "\"bc\"");
    assert_eq!(ev("'hello world'[/o (w)/, 1]"), "\"w\"");
    assert_eq!(
        ev("'%05.2f|%-4s|%x' % [3.14159, 'ab', 255]"),
        "\"03.14|ab  |ff\""
    );
    assert_eq!(ev("nil.to_i"), "0");
    assert_eq!(
        ev("'abc'.foo"),
        "compile error: undefined method 'foo' (not supported by ferrentd's Ruby evaluator)"
    );
    assert_eq!(
        ev("'abc'.keys"),
        "!NoMethodError: undefined method `keys' for \"abc\":String"
    );
    assert_eq!(
        ev("nil.upcase"),
        "!NoMethodError: undefined method `upcase' for nil:NilClass"
    );
    assert_eq!(ev("if nil; 1; elsif 0; 2; else 3; end"), "2");
    assert_eq!(ev("x = nil; x&.length"), "nil");
    assert_eq!(ev("1.5.round"), "2");
    assert_eq!(ev("2.675.round(2)"), "2.68");
    assert_eq!(ev("10.0 / 3"), "3.3333333333333335");
    assert_eq!(ev("1e20.to_s"), "\"1.0e+20\"");
    assert_eq!(
        ev("Time.at(1700000000).utc.strftime('%Y-%m-%dT%H:%M:%S')"),
        "\"2023-11-14T22:13:20\""
    );
    assert_eq!(
        ev("Time.at(1700000000.5).utc.iso8601(3)"),
        "\"2023-11-14T22:13:20.500Z\""
    );
    assert_eq!(ev("IPAddr.new('::1').ipv6?"), "true");
    assert_eq!(ev("JSON.parse('{\"a\": [1, 2.5]}')"), "{\"a\"=>[1, 2.5]}");
    assert_eq!(ev("{'a' => 1}.to_json"), "\"{\\\"a\\\":1}\"");
    assert_eq!(
        ev("File.join('/var/log/', '', 'x.pos')"),
        "\"/var/log/x.pos\""
    );
    assert_eq!(ev("'a-b_c'.tr('-_', '  ')"), "\"a b c\"");
    assert_eq!(ev(":sym.to_s + 'x'"), "\"symx\"");
    assert_eq!(ev("if (val = ENV.fetch('NOPE_X','')) && (val.length > 0); val; else '/run/log/journal'; end"), "\"/run/log/journal\"");
}

#[test]
fn budgets_stop_runaway_code() {
    assert!(
        ev("loop {}").starts_with("!abort: step budget"),
        "{}",
        ev("loop {}")
    );
    assert!(ev("while true; end").starts_with("!abort: step budget"));
    assert!(ev("'a' * 1_000_000_000").starts_with("!abort: memory budget"));
    assert!(ev("s = 'ab'; 40.times { s = s + s }; s.size").starts_with("!abort: memory budget"));
    assert!(ev("(1..10**12).to_a").starts_with("!abort"));
    // Integers grow past 64 bits, but not without bound: checked before being built.
    assert!(ev("2 ** 100000000").starts_with("!abort: memory budget"));
    assert!(ev("1 << 10_000_000").starts_with("!abort: memory budget"));
    assert!(ev("('9' * 1_000_000).to_i").starts_with("!abort: memory budget"));
    assert!(ev("Integer('9' * 1_000_000)").starts_with("!abort: memory budget"));
    assert!(ev("x = 3; loop { x *= x }").starts_with("!abort: memory budget"));
    assert!(ev("x = 1; loop { x *= 3 }").starts_with("!abort"));
    assert!(ev("(2 ** 64).times { }").starts_with("!abort: step budget"));
    assert!(ev("loop.to_a").starts_with("!abort: step budget"));
    assert!(ev("loop.map { 1 }").starts_with("!abort: step budget"));
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(ev(&deep).starts_with("compile error: Ruby expression nested too deeply"));
    assert!(ev("def f; f; end; f").starts_with("compile error"));
    assert!(ev("->(x) { x }").starts_with("compile error"));
}

/// Integers beyond 64 bits; expected values from Ruby 3.1.
#[test]
fn bignums_as_ruby() {
    assert_eq!(ev("2 ** 100"), "1267650600228229401496703205376");
    assert_eq!(ev("(2 ** 100).class"), "Integer");
    assert_eq!(ev("9223372036854775807 + 1"), "9223372036854775808");
    assert_eq!(ev("(2 ** 64 + 5) - 2 ** 64"), "5");
    assert_eq!(ev("(2 ** 64 + 5 - 2 ** 64).class"), "Integer");
    assert_eq!(ev("(-(2 ** 70)).divmod(7)"), "[-168655945816773043347, 5]");
    assert_eq!(ev("(2 ** 70) % -3"), "-2");
    assert_eq!(ev("-(2 ** 64) >> 3"), "-2305843009213693952");
    assert_eq!(ev("~(2 ** 64)"), "-18446744073709551617");
    assert_eq!(ev("(2 ** 64) == 2.0 ** 64"), "true");
    assert_eq!(ev("9007199254740993 == 9007199254740992.0"), "false");
    assert_eq!(ev("(2 ** 64) < 0.0 / 0"), "false");
    assert_eq!(ev("(2 ** 3000).to_f"), "Infinity");
    assert_eq!(
        ev("123456789012345678901234567890"),
        "123456789012345678901234567890"
    );
    assert_eq!(ev("0xffffffffffffffffffff"), "1208925819614629174706175");
    assert_eq!(
        ev("'123456789012345678901234567890'.to_i + 1"),
        "123456789012345678901234567891"
    );
    assert_eq!(ev("{2 ** 64 => 1}[2 ** 64]"), "1");
    assert_eq!(ev("(2 ** 64).to_s(16)"), "\"10000000000000000\"");
    assert_eq!(ev("1e20.to_i"), "100000000000000000000");
    assert_eq!(ev("0 ** 4294967296"), "0");
    assert_eq!(ev("(-1) ** (2 ** 64 + 1)"), "-1");
    assert_eq!(
        ev("2 ** -1"),
        "!NotImplementedError: Integer ** negative Integer makes a Rational, which embedded Ruby does not support"
    );
    assert_eq!(ev("(2 ** 64) / 0"), "!ZeroDivisionError: divided by 0");
    assert_eq!(
        ev("'a' * 2 ** 64"),
        "!RangeError: bignum too big to convert into `long'"
    );
    assert_eq!(
        ev("(2 ** 64) < 'a'"),
        "!ArgumentError: comparison of Integer with String failed"
    );
    // As an event value: up to 64 unsigned bits an integer, beyond that its digits.
    let p = Program::compile("2 ** 64 - 1", &[]).unwrap();
    assert_eq!(
        p.run_value(&host(), &[], Budget::EVENT).unwrap(),
        crate::event::Value::UInt(u64::MAX)
    );
    let p = Program::compile("2 ** 64", &[]).unwrap();
    assert_eq!(
        p.run_value(&host(), &[], Budget::EVENT).unwrap(),
        crate::event::Value::BigInt("18446744073709551616".into())
    );
}

/// Iterators without a block give Enumerators; expected values from Ruby 3.1.
#[test]
fn enumerators_as_ruby() {
    assert_eq!(ev("[1, 2].each"), "#<Enumerator: [1, 2]:each>");
    assert_eq!(
        ev("[1, 2].each.with_index(1)"),
        "#<Enumerator: #<Enumerator: [1, 2]:each>:with_index(1)>"
    );
    assert_eq!(
        ev("[1, 2, 3].each_slice(2)"),
        "#<Enumerator: [1, 2, 3]:each_slice(2)>"
    );
    assert_eq!(ev("loop"), "#<Enumerator: main:loop>");
    assert_eq!(ev("[1, 2].each.class"), "Enumerator");
    assert_eq!(ev("Enumerator === [1, 2].each"), "true");
    assert_eq!(
        ev("[1, 2].map.with_index(1).map { |x, i| x * i }"),
        "[1, 4]"
    );
    assert_eq!(ev("[1, 2].map.with_index { |x, i| x * i }"), "[0, 2]");
    assert_eq!(ev("[1, 2].map.each_with_index { |x, i| x * i }"), "[0, 2]");
    assert_eq!(
        ev("[1, 2, 3].take_while.with_index { |x, i| i < 2 }"),
        "[1, 2]"
    );
    assert_eq!(
        ev("[1, 2, 3].drop_while.with_index { |x, i| i < 1 }"),
        "[2, 3]"
    );
    assert_eq!(ev("[1, 2, 3].take_while.to_a"), "[1]");
    assert_eq!(ev("[5, 6, 7].find.with_index { |x, i| i == 1 }"), "6");
    // find stops at its answer: the block never sees the third element.
    assert_eq!(ev("[5, 6, nil].find.with_index { |x, i| x + 1 > 6 }"), "6");
    assert_eq!(
        ev("[5, 6, 7].each_slice(2).with_index(1).map { |s, i| s.sum * i }"),
        "[11, 14]"
    );
    assert_eq!(
        ev("loop.with_index { |_, i| break i * 10 if i == 3 }"),
        "30"
    );
    assert_eq!(ev("e = [1, 2].map; e.next; e.peek"), "2");
    assert_eq!(ev("e = [1].each; e.next; e.rewind; e.next"), "1");
    assert_eq!(
        ev("e = [1].each; e.next; e.next"),
        "!StopIteration: iteration reached an end"
    );
    assert_eq!(
        ev("e = [1, 2, 3].each; a = []; loop { a << e.next }; a"),
        "[1, 2, 3]"
    );
    assert_eq!(
        ev("[1, 2].each.keys"),
        "!NoMethodError: undefined method `keys' for #<Enumerator: [1, 2]:each>"
    );
    assert_eq!(ev("{a: 1}.each_with_index.to_a"), "[[[:a, 1], 0]]");
    assert_eq!(
        ev("[3, 1, 2].each_with_index.sort_by { |x, i| x }.map(&:last)"),
        "[1, 2, 0]"
    );
    assert_eq!(
        ev("'a-b'.each_char.select { |c| c != '-' }"),
        "[\"a\", \"b\"]"
    );
    assert_eq!(
        ev("[1, 2, 3].each_with_index.with_object([]) { |(x, i), acc| acc << x * i }"),
        "[0, 2, 6]"
    );
    assert_eq!(ev("3.times.each_slice(2).to_a"), "[[0, 1], [2]]");
    assert_eq!(ev("[1, 2].each.size"), "2");
    assert_eq!(ev("[1, 2].find.size"), "nil");
    assert_eq!(ev("loop.size"), "Infinity");
    assert_eq!(
        ev("[1, 2].each.with_index.with_index.to_a"),
        "[[[1, 0], 0], [[2, 1], 1]]"
    );
    assert_eq!(
        ev("[1, 2].with_index"),
        "!NoMethodError: undefined method `with_index' for [1, 2]:Array"
    );
}

/// The config values of the issue's Kubernetes examples, with a pod's environment; expected
/// values are what Ruby 3.1 gives.
#[test]
fn kubernetes_config_examples() {
    std::env::set_var("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    std::env::set_var("KUBERNETES_SERVICE_PORT", "443");
    std::env::remove_var("FLUENT_POS_EXTRA_DIR");
    std::env::remove_var("FLUENT_FILTER_KUBERNETES_URL");
    std::env::remove_var("JOURNAL_SOURCE");
    let dir = std::env::temp_dir().join(format!("ferrentd-ruby-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    std::env::set_var("DB_PASSWORD_FILE_FERRENTD_T", &pw);
    let ev = |c: &str| eval_config(c, "h", "0");
    let s = |v: &str| Ok(Evaluated::Str(v.to_string()));
    assert_eq!(
        ev("File.join('/var/log/', ENV.fetch('FLUENT_POS_EXTRA_DIR', ''), 'fluentd-containers.log.pos')"),
        s("/var/log/fluentd-containers.log.pos")
    );
    let url = "ENV['FLUENT_FILTER_KUBERNETES_URL'] || (host = ENV.fetch('KUBERNETES_SERVICE_HOST'); port = ENV.fetch('KUBERNETES_SERVICE_PORT'); host = (IPAddr.new(host).ipv6? ? '[' + host + ']' : host rescue host); 'https://' + host + ':' + port + '/api')";
    assert_eq!(ev(url), s("https://10.96.0.1:443/api"));
    let shipped = "ENV['FLUENT_FILTER_KUBERNETES_URL'] || https://#{ENV.fetch('KUBERNETES_SERVICE_HOST')}:#{ENV.fetch('KUBERNETES_SERVICE_PORT')}/api";
    // Ruby: "syntax error, unexpected symbol literal" (`://` starts the symbol :/).
    let e = ev(shipped).unwrap_err();
    assert!(e.0.contains("syntax error"), "{e:?}");
    assert_eq!(
        ev("if (val = ENV.fetch('JOURNAL_SOURCE','')) && (val.length > 0); val; else '/run/log/journal'; end"),
        s("/run/log/journal")
    );
    assert_eq!(
        ev("File.open(ENV['DB_PASSWORD_FILE_FERRENTD_T']).read.chomp"),
        s("s3cret")
    );
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        ev("Dir.pwd").map(|v| match v {
            Evaluated::Str(x) => x + "/out",
            o => format!("{o:?}"),
        }),
        Ok(format!("{}/out", cwd.display()))
    );
    std::env::set_var("KUBERNETES_SERVICE_HOST", "fd00::1");
    assert_eq!(ev(url), s("https://[fd00::1]:443/api"));
    std::env::set_var("KUBERNETES_SERVICE_HOST", "not an address");
    assert_eq!(ev(url), s("https://not an address:443/api"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn more_syntax() {
    assert_eq!(ev("not nil"), "true");
    assert_eq!(ev("Integer('x') rescue 'fallback'"), "\"fallback\"");
    assert_eq!(
        ev("\"tab\\there\\n\".inspect"),
        "\"\\\"tab\\\\there\\\\n\\\"\""
    );
    assert_eq!(ev("'single \\n'"), "\"single \\\\n\"");
    assert_eq!(ev("a, *b = [1, 2, 3]; b"), "[2, 3]");
    assert_eq!(ev("x = 0; x += 5; x ||= 9; x"), "5");
    assert_eq!(ev("[[1, 2], [3, 4]].map { |a, b| a + b }"), "[3, 7]");
    assert_eq!(ev("[1, 2, 3].map { _1 * 10 }"), "[10, 20, 30]");
    assert_eq!(ev("%w[a b].map(&:upcase)"), "[\"A\", \"B\"]");
    assert_eq!(ev("'2023-11-14' =~ /(\\d+)-(\\d+)/; $2"), "\"11\"");
    assert_eq!(ev("unless false then 1 end"), "1");
    assert_eq!(ev("i = 0; i += 1 while i < 5; i"), "5");
    assert_eq!(ev("[1, 2, 3, 4].each_slice(2).map(&:sum)"), "[3, 7]");
    assert_eq!(ev(":a.inspect"), "\":a\"");
    assert_eq!(ev("{b: 1}[:b]"), "1");
    assert_eq!(
        ev("h = Hash.new(0); 'abca'.each_char { |c| h[c] += 1 }; h"),
        "{\"a\"=>2, \"b\"=>1, \"c\"=>1}"
    );
    assert_eq!(ev("raise ArgumentError, 'bad'"), "!ArgumentError: bad");
    assert_eq!(
        ev("begin; raise 'x'; rescue => e; e.message; ensure; 1; end"),
        "\"x\""
    );
    assert_eq!(ev("[3, 1, 2].sort.first(2)"), "[1, 2]");
    assert_eq!(ev("'a-b'.split('-', 2)"), "[\"a\", \"b\"]");
    assert_eq!(ev("1.0 / 0"), "Infinity");
    assert_eq!(ev("-7.fdiv(2)"), "-3.5");
}

#[test]
fn config_budgets_give_located_errors() {
    let e = eval_config("x = 1; loop { x += 1 }", "h", "0").unwrap_err();
    assert!(e.0.contains("step budget exceeded"), "{e:?}");
    let e = eval_config("s = 'x' * 1000; 30.times { s += s }; s", "h", "0").unwrap_err();
    assert!(e.0.contains("memory budget exceeded"), "{e:?}");
    let e = eval_config("'abc'.upcase.nope", "h", "0").unwrap_err();
    assert_eq!(e.1, 13, "offset of the method name: {e:?}");
    let e = eval_config("nil.upcase", "h", "0").unwrap_err();
    assert!(
        e.0.contains("NoMethodError: undefined method `upcase' for nil:NilClass"),
        "{e:?}"
    );
    assert_eq!(e.1, 4);
}

#[test]
fn odd_inputs_never_panic() {
    for src in [
        "Time.at(1e300).utc.to_s",
        "Time.at(-1e18).iso8601",
        "Time.at(2**62).strftime('%Y')",
        "1 >> -2",
        "1 << -2",
        "10.round(-100)",
        "1.5.round(-400)",
        "'é'[5..]",
        "'héllo'.byteslice(2, 1)",
        "'abc' % []",
        "format('%*d', 10**12, 1)",
        "'%-*s' % [-5, 'x']",
        "'x'.center(10**12)",
        "[1] * (2**40)",
        "Array.new(2**40)",
        "(1..).first(3)",
        "('a'..'zzzzzzzz').to_a",
        "'a'.succ * 3",
        "Integer('0x')",
        "Integer('9' * 40)",
        "''.split(//)",
        "'abc'.split(//, -1)",
        "'a,b,,'.split(',', -1)",
        "'aaa'.gsub(/a*/, '-')",
        "'abc'.scan(//)",
        "'ab'.tr('a-', 'x')",
        "'ab'.tr('^', 'x')",
        "'x'.ljust(3, '')",
        "JSON.parse('[' * 200 + ']' * 200)",
        "JSON.generate(0.0 / 0)",
        "IPAddr.new('1.2.3.4/99')",
        "IPAddr.new('::1/200')",
        "File.read('/nonexistent')",
        "File.read('/')",
        "Dir.glob('/nonexistent/**')",
        "Regexp.new('(')",
        "'a' =~ Regexp.new('a{99999}')",
        "$1",
        "$~",
        "x = [1]; x << x; x.size",
        "h = {}; h['a'] = h; h.size",
        "raise Exception",
        "catch",
        "-9223372036854775808 / -1",
        "-9223372036854775808 % -1",
        "(-9223372036854775808).abs",
        "9223372036854775807 + 1",
        "2 ** -2",
        "0 ** -1",
        "0.0 ** -1",
        "0 ** 4294967296",
        "(-1) ** (2 ** 64)",
        "2 ** (2 ** 64)",
        "(2 ** 64).round(-10**12)",
        "(2 ** 64) << (2 ** 64)",
        "(2 ** 64) >> (2 ** 64)",
        "(2 ** 64).pow(2, 0)",
        "(2 ** 64).digits",
        "Integer('1' * 100, 2)",
        "(2 ** 64).to_s(1)",
        "[].each.next",
        "[1].each_slice(0).to_a",
        "loop.next",
        "e = [1].each; e.next; e.peek",
        "[1, 2].each.with_index('a').to_a",
        "[1, 2].each.with_object.to_a",
        "3.times.with_index(2 ** 64).to_a",
        "10.divmod(0)",
        "10.0.divmod(0)",
        "'%c' % 0x110000",
        "1.chr",
        "300.chr",
        "0x110000.chr('UTF-8')",
    ] {
        let _ = ev(src);
    }
}

#[test]
fn split_with_empty_matches_as_ruby() {
    // Expected values from Ruby 3.1.
    assert_eq!(ev("'abc'.split(//)"), "[\"a\", \"b\", \"c\"]");
    assert_eq!(ev("'abc'.split(/b*/)"), "[\"a\", \"c\"]");
    assert_eq!(ev("'abc'.split(/x*/)"), "[\"a\", \"b\", \"c\"]");
    assert_eq!(ev("'abc'.split(/(b)/)"), "[\"a\", \"b\", \"c\"]");
    assert_eq!(ev("',a,,b,,'.split(/,/)"), "[\"\", \"a\", \"\", \"b\"]");
    assert_eq!(ev("'abc'.split(//, 2)"), "[\"a\", \"bc\"]");
    assert_eq!(ev("'abc'.split(/b*/, -1)"), "[\"a\", \"c\", \"\"]");
    assert_eq!(ev("'aaa'.split(/a*/)"), "[]");
    assert_eq!(ev("' a b '.split(/ /)"), "[\"\", \"a\", \"b\"]");
    assert_eq!(ev("'abc'.split(//, -1)"), "[\"a\", \"b\", \"c\", \"\"]");
    assert_eq!(
        ev("'héllo'.split(//)"),
        "[\"h\", \"é\", \"l\", \"l\", \"o\"]"
    );
}

/// The direct forms give exactly what the general evaluator gives, for every record shape
/// (including the ones where they hand over to it).
#[test]
fn fast_paths_agree_with_the_evaluator() {
    use crate::event::{EventTime, Value};
    std::env::set_var("TZ", "UTC");
    let exprs = [
        r##"record["host"]"##,
        r##"record["k8s"]["labels"]["app"]"##,
        r##"record.dig("k8s", "labels", "app")"##,
        r##"record["host"] || tag_parts[1]"##,
        r##"record["code"].to_i >= 500 ? "error" : "ok""##,
        r##"record["code"] == "503""##,
        r##"record["msg"].gsub(/\s+/, " ")"##,
        r##"record["msg"].sub(/[a-z]+/, "X")"##,
        r##"record["msg"].gsub(/o*/, "-")"##,
        r##"record["msg"].gsub(/\d/, "#")"##,
        r##"record["msg"].gsub(/[^a-z ]+/, "")"##,
        r##"record["msg"].gsub(/\.t/, "!")"##,
        r##"Time.at(time).utc.strftime("%Y-%m-%dT%H:%M:%S")"##,
        r##"Time.at(time).to_s"##,
        r##"time.to_i"##,
        r##"record["host"].to_s.upcase"##,
        r##"record["host"]&.downcase"##,
        r##"%Q[#{tag}-#{record["code"]}-#{tag_parts[-1]}]"##,
        r##"if record['host']; record['host']; elsif tag_parts[1]; "#{tag_parts[1]}"; else 'unknown'; end"##,
        r##"!record["flag"] && record["n"]"##,
        r##"record["k8s"]"##,
        r##"tag_parts[5]"##,
        r##"record["n"].to_s"##,
    ];
    let records = [
        r#"{"host": "web-1", "code": "503", "msg": "GET  /api\tv1  x.t", "k8s": {"labels": {"app": "shop"}}, "n": 7, "flag": false}"#,
        r#"{"host": null, "code": 200, "msg": "café  au lait", "k8s": {"labels": "none"}, "n": 1.5}"#,
        r#"{"code": "abc", "msg": 12, "k8s": null, "n": [1, 2], "flag": true}"#,
        r#"{"host": "Ümlaut", "code": null, "msg": "", "k8s": {"labels": {}}, "n": {"a": 1}}"#,
        r#"{"host": ["a"], "code": "99999999999999999999", "msg": "o", "n": null}"#,
    ];
    let locals = ["tag", "time", "record", "tag_parts"];
    let parts: Vec<Value> = ["app", "web", "access"]
        .iter()
        .map(|s| Value::Str(s.as_bytes().to_vec()))
        .collect();
    let mut fast = 0;
    for e in exprs {
        let p = Program::compile(e, &locals).unwrap_or_else(|err| panic!("{e}: {err:?}"));
        if p.is_fast() {
            fast += 1;
        }
        for r in records {
            let rec = match crate::util::value_from_json(serde_json::from_str(r).unwrap()) {
                Value::Map(m) => m,
                _ => unreachable!(),
            };
            let vals = [
                V::str("app.web.access"),
                V::Time(value::Time {
                    t: EventTime::new(1_700_000_000, 5),
                    zone: crate::timefmt::TimeZoneSpec::Local,
                }),
                V::Rec(&rec),
                V::RArr(&parts),
            ];
            let general = p
                .run(&host(), vals.iter().cloned(), Budget::EVENT)
                .map(|v| value::to_event(&v))
                .map_err(|e| e.class);
            let direct = p
                .run_value(&host(), &vals, Budget::EVENT)
                .map_err(|e| e.class);
            assert_eq!(direct, general, "{e} over {r}");
        }
    }
    assert_eq!(fast, exprs.len(), "every shape above has a direct form");
}

#[test]
fn simple_regexps_match_as_the_engine_does() {
    for (pat, text) in [
        (r"\s+", "a  b\tc\n"),
        (r"\s*", "ab  c"),
        (r"[a-c,]+", "xxab,c yy"),
        (r"[^a-z]", "abc1d"),
        (r"o", "foo"),
        (r"\.t", "a.t.b"),
        (r"\w?", "a-b"),
        (r".", "\nx"),
    ] {
        let re = regexp::Re::new(pat, 0).unwrap();
        assert!(re.simple.is_some(), "{pat}");
        let mut pos = 0;
        while pos <= text.len() {
            let simple = re.find_simple(text, pos).unwrap();
            let engine = re
                .re
                .find_from_pos(text, pos)
                .unwrap()
                .map(|m| (m.start(), m.end()));
            assert_eq!(simple, engine, "/{pat}/ on {text:?} at {pos}");
            pos += 1;
        }
    }
    for pat in [
        r"a|b",
        r"(a)",
        r"a+b",
        r"^a",
        r"a{2}",
        r"[[:alpha:]]",
        r"\bx",
    ] {
        assert!(regexp::Re::new(pat, 0).unwrap().simple.is_none(), "{pat}");
    }
}
