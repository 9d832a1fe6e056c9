from cc.storeproc.app import main

main()
