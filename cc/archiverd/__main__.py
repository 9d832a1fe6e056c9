from cc.archiverd.app import main

main()
